//! What a cardholder reads: amounts in their format (¥12,800; US$1,234.56), times in their
//! time zone and language.

use cardguard_core::{Money, Timestamp};
use jiff::tz::TimeZone;

/// Digits grouped by thousands: 1234567 → "1,234,567".
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A merchant as the cardholder reads it: its name, and its city when it has one.
pub fn merchant(m: &cardguard_core::Merchant) -> String {
    if m.city.is_empty() {
        m.name.clone()
    } else {
        format!("{} ({})", m.name, m.city)
    }
}

/// The amount as cardholders read it: the currency's sign where it has a common one
/// (¥, US$, €, £, A$, C$, HK$, S$, ₩), otherwise the ISO code after the number; digits
/// grouped by thousands, as many decimals as the currency has.
pub fn money(m: &Money) -> String {
    let exp = u32::from(m.currency.exponent());
    let unit = 10u64.pow(exp);
    let (major, minor) = (m.value / unit, m.value % unit);
    let number = if exp == 0 {
        grouped(major)
    } else {
        format!("{}.{:0width$}", grouped(major), minor, width = exp as usize)
    };
    let sign = match m.currency.code() {
        "JPY" => Some("¥"),
        "USD" => Some("US$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "AUD" => Some("A$"),
        "CAD" => Some("C$"),
        "HKD" => Some("HK$"),
        "SGD" => Some("S$"),
        "KRW" => Some("₩"),
        _ => None,
    };
    match sign {
        Some(s) => format!("{s}{number}"),
        None => format!("{number} {}", m.currency.code()),
    }
}

/// The time zone of a country that has one (no guessing for countries that span several:
/// those need the card's `contact.time_zone`).
pub fn country_zone(country: &str) -> Option<&'static str> {
    Some(match country {
        "JP" => "Asia/Tokyo",
        "KR" => "Asia/Seoul",
        "CN" => "Asia/Shanghai",
        "HK" => "Asia/Hong_Kong",
        "TW" => "Asia/Taipei",
        "SG" => "Asia/Singapore",
        "TH" => "Asia/Bangkok",
        "PH" => "Asia/Manila",
        "VN" => "Asia/Ho_Chi_Minh",
        "IN" => "Asia/Kolkata",
        "GB" => "Europe/London",
        "IE" => "Europe/Dublin",
        "FR" => "Europe/Paris",
        "DE" => "Europe/Berlin",
        "IT" => "Europe/Rome",
        "ES" => "Europe/Madrid",
        "NL" => "Europe/Amsterdam",
        "CH" => "Europe/Zurich",
        "NZ" => "Pacific/Auckland",
        _ => return None,
    })
}

/// The cardholder's zone: the one the card names, else its home country's, else UTC.
pub fn zone(named: Option<&str>, home_country: Option<&str>) -> TimeZone {
    named
        .or_else(|| home_country.and_then(country_zone))
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC)
}

/// A moment in the cardholder's zone: `2026年12月1日 10:15 (JST)` in Japanese,
/// `1 Dec 2026, 10:15 JST` in English.
pub fn local_time(t: Timestamp, tz: &TimeZone, language: &str) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(t.0) else {
        return String::from("-");
    };
    let z = ts.to_zoned_datetime(tz.clone());
    if language == "ja" {
        z.strftime("%Y年%-m月%-d日 %H:%M (%Z)").to_string()
    } else {
        z.strftime("%-d %b %Y, %H:%M %Z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardguard_core::Currency;

    #[test]
    fn amounts_read_as_cardholders_write_them() {
        let m = |v, c| money(&Money::new(v, Currency::parse(c).unwrap()).unwrap());
        assert_eq!(m(12_800, "JPY"), "¥12,800");
        assert_eq!(m(500, "JPY"), "¥500");
        assert_eq!(m(123_456, "USD"), "US$1,234.56");
        assert_eq!(m(5, "USD"), "US$0.05");
        assert_eq!(m(1_000_000_000, "EUR"), "€10,000,000.00");
        assert_eq!(m(1_234_567, "BHD"), "1,234.567 BHD");
        assert_eq!(m(0, "GBP"), "£0.00");
    }

    #[test]
    fn times_are_in_the_cardholders_zone_and_language() {
        let t = Timestamp::parse_rfc3339("2026-12-01T01:15:00Z").unwrap();
        let tokyo = zone(None, Some("JP"));
        assert_eq!(local_time(t, &tokyo, "ja"), "2026年12月1日 10:15 (JST)");
        assert_eq!(local_time(t, &tokyo, "en"), "1 Dec 2026, 10:15 JST");
        let ny = zone(Some("America/New_York"), Some("JP"));
        assert_eq!(local_time(t, &ny, "en"), "30 Nov 2026, 20:15 EST");
        // A country of several zones without a named one: UTC, said as such.
        assert_eq!(
            local_time(t, &zone(None, Some("US")), "en"),
            "1 Dec 2026, 01:15 UTC"
        );
    }
}
