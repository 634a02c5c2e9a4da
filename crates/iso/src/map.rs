//! ISO 8583:1987 to the application and back. An authorization (0100) or financial request
//! (0200) becomes an [`Authorization`]: DE2 PAN, DE3 processing code (00 purchase, 01 cash
//! advance, 20 refund), DE4 amount in DE49's currency (numeric), DE7 transmission time (UTC,
//! the current year) as its time, DE12/13 local time for its UTC offset, DE14 expiry, DE18
//! MCC, DE22 POS entry mode (with DE25 and the MCC) for the channel, DE41 terminal, DE42
//! merchant, DE43 name, city and country (the place from the gazetteer), DE52 PIN block. The
//! response (0110, 0210) carries DE39 from the decision, DE38 on approval, and echoes the
//! fields a network matches answers by. A reversal (0400, 0420) names its original by DE90
//! (see [`reversal`]).

use cardguard_app::{Original, ReversalRequest};
use cardguard_core::{
    Authorization, CardData, Channel, Country, Currency, Expiry, Location, Mcc, Merchant, Money,
    Pan, Timestamp, TxType,
};
use cardguard_engine::AuthRecord;
use cardguard_iso8583::Message;

/// Why a request message does not make an authorization: the field, and what is wrong.
/// Never the field's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {why}")]
pub struct MapError {
    pub field: u8,
    pub why: String,
}

fn bad(field: u8, why: impl Into<String>) -> MapError {
    MapError {
        field,
        why: why.into(),
    }
}

/// Response code of a format error.
pub const FORMAT_ERROR: &str = "30";
/// Response code of a duplicate transmission (a used request id for another request).
pub const DUPLICATE: &str = "94";
/// Response code of a transaction the issuer does not do here.
pub const INVALID_TRANSACTION: &str = "12";
/// Response code of a reversal whose original is not there (or is not what it says).
pub const NO_ORIGINAL: &str = "25";

/// The fields a response echoes from its request, when the request had them.
const ECHOED: [u8; 13] = [2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49, 90];

fn text(m: &Message, n: u8) -> Result<&str, MapError> {
    m.text(n).ok_or_else(|| bad(n, "is required"))
}

fn digits(m: &Message, n: u8) -> Result<&str, MapError> {
    let t = text(m, n)?;
    if t.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t)
    } else {
        Err(bad(n, "must be digits"))
    }
}

fn num(s: &str) -> u32 {
    s.bytes()
        .fold(0u32, |a, b| a.saturating_mul(10) + u32::from(b - b'0'))
}

/// A time from MMDD and hhmmss in `year`, as Unix milliseconds.
fn civil(year: i32, mmdd: &str, hhmmss: &str) -> Option<Timestamp> {
    let (mo, d) = (num(&mmdd[..2]), num(&mmdd[2..]));
    let (h, mi, s) = (num(&hhmmss[..2]), num(&hhmmss[2..4]), num(&hhmmss[4..]));
    Timestamp::parse_rfc3339(&format!("{year:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")).ok()
}

/// DE7 (MMDDhhmmss, UTC) in the year that puts it nearest `now` (a message sent on 31
/// December and read on 1 January is last year's).
fn transmission_time(m: &Message, now: Timestamp) -> Result<Timestamp, MapError> {
    let de7 = digits(m, 7)?;
    if de7.len() != 10 {
        return Err(bad(7, "must be MMDDhhmmss"));
    }
    let year = now.ymd().0;
    [year - 1, year, year + 1]
        .iter()
        .filter_map(|&y| civil(y, &de7[..4], &de7[4..]))
        .min_by_key(|t| (t.0 - now.0).abs())
        .ok_or_else(|| bad(7, "is not a date and time"))
}

/// The UTC offset of DE12/DE13 (local time and date) against the transmission time, to the
/// quarter hour; 0 without them.
fn utc_offset(m: &Message, at: Timestamp) -> Result<i16, MapError> {
    let (Some(time), Some(date)) = (m.text(12), m.text(13)) else {
        return Ok(0);
    };
    if time.len() != 6
        || date.len() != 4
        || !(time.bytes().chain(date.bytes())).all(|b| b.is_ascii_digit())
    {
        return Err(bad(12, "local time must be hhmmss and DE13 MMDD"));
    }
    let year = at.ymd().0;
    let local = [year - 1, year, year + 1]
        .iter()
        .filter_map(|&y| civil(y, date, time))
        .min_by_key(|t| (t.0 - at.0).abs())
        .ok_or_else(|| bad(12, "is not a date and time"))?;
    let minutes = (local.0 - at.0) as f64 / 60_000.0;
    let quarter = ((minutes / 15.0).round() * 15.0) as i64;
    if quarter.abs() > 14 * 60 {
        return Err(bad(12, "is more than 14 hours from the transmission time"));
    }
    Ok(quarter as i16)
}

/// The channel from DE22 (POS entry mode), DE25 (POS condition) and the MCC.
fn channel(m: &Message, mcc: Mcc) -> Channel {
    if m.text(25) == Some("08") {
        return Channel::Moto;
    }
    let mode = m.text(22).and_then(|t| t.get(..2)).unwrap_or("");
    match mode {
        "01" | "10" | "81" => Channel::Ecommerce,
        _ if mcc.code() == 6011 => Channel::Atm,
        _ => Channel::CardPresent,
    }
}

fn pin_block(m: &Message) -> Result<Option<Vec<u8>>, MapError> {
    let Some(v) = m.get(52) else {
        return Ok(None);
    };
    match v.len() {
        8 => Ok(Some(v.to_vec())),
        16 | 32 => (0..v.len())
            .step_by(2)
            .map(|i| {
                std::str::from_utf8(&v[i..i + 2])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .map(Some)
            .ok_or_else(|| bad(52, "must be hexadecimal")),
        _ => Err(bad(52, "must be 8 bytes or 16 or 32 hex digits")),
    }
}

/// The request id an authorization is known by: the terminal, the STAN, the transmission
/// time and the retrieval reference number, which a network's retry repeats.
fn request_id(m: &Message) -> Result<String, MapError> {
    Ok(id_of(m, digits(m, 11)?, digits(m, 7)?))
}

/// The request id of the message with `stan` and `de7` at `m`'s terminal and RRN.
fn id_of(m: &Message, stan: &str, de7: &str) -> String {
    let clean = |s: &str| -> String {
        s.trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    let id = format!(
        "iso:{}:{stan}:{de7}:{}",
        clean(m.text(41).unwrap_or("")),
        clean(m.text(37).unwrap_or(""))
    );
    id.chars().take(64).collect()
}

/// Whether a reversal is partial: DE95 (replacement amounts) gives an amount that stays.
pub fn is_partial(m: &Message) -> bool {
    m.text(95)
        .and_then(|t| t.get(..12))
        .is_some_and(|actual| actual.bytes().any(|b| b != b'0'))
}

/// The reversal a 0400 or 0420 (or their repeats, 0401 and 0421) asks for. The original is
/// the authorization of DE90's STAN and transmission time (original data elements: MTI 4,
/// STAN 6, DE7 10, then the institutions) at the same terminal (DE41) with the same RRN
/// (DE37); without DE90, the reversal's own DE11 and DE7, which then repeat the original's.
/// DE2 and DE4 with DE49, when present, must be the original's card and amount.
pub fn reversal(m: &Message) -> Result<ReversalRequest, MapError> {
    let (stan, de7) = match m.text(90) {
        Some(de90) => {
            if de90.len() < 20 || !de90.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    90,
                    "must be digits: MTI, STAN and transmission time first",
                ));
            }
            if !matches!(&de90[..4], "0100" | "0200") {
                return Err(bad(90, "original MTI must be 0100 or 0200"));
            }
            (&de90[4..10], &de90[10..20])
        }
        None => (digits(m, 11)?, digits(m, 7)?),
    };
    if de7.len() != 10 {
        return Err(bad(7, "must be MMDDhhmmss"));
    }
    text(m, 41)?;
    let pan = match m.text(2) {
        Some(p) => Some(Pan::parse(p).map_err(|e| bad(2, e.to_string()))?),
        None => None,
    };
    let amount = match m.text(4) {
        Some(_) => {
            let currency =
                Currency::from_numeric(digits(m, 49)?).map_err(|e| bad(49, e.to_string()))?;
            let value: u64 = digits(m, 4)?
                .parse()
                .map_err(|_| bad(4, "must be at most 12 digits"))?;
            Some(Money::new(value, currency).map_err(|e| bad(4, e.to_string()))?)
        }
        None => None,
    };
    Ok(ReversalRequest {
        original: Original::Request(id_of(m, stan, de7)),
        pan,
        amount,
        source: format!("iso8583 {}", m.mti),
        reference: Some(request_id(m)?),
    })
}

/// `t` as MMDDhhmmss (DE7 in UTC; DE13 and DE12 together with `offset_min` the local
/// offset).
pub fn mmddhhmmss(t: Timestamp, offset_min: i64) -> String {
    let s = Timestamp(t.0 + offset_min * 60_000).to_rfc3339();
    format!(
        "{}{}{}{}{}",
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}

/// The authorization a 0100 or 0200 asks for, and the UTC offset of its local time.
pub fn authorization(m: &Message, now: Timestamp) -> Result<(Authorization, i16), MapError> {
    let pan = Pan::parse(digits(m, 2)?).map_err(|e| bad(2, e.to_string()))?;
    let tx_type = match digits(m, 3)?.get(..2) {
        Some("00") => TxType::Purchase,
        Some("01") => TxType::CashAdvance,
        Some("20") => TxType::Refund,
        _ => return Err(bad(3, "processing code must start 00, 01 or 20")),
    };
    let currency = Currency::from_numeric(digits(m, 49)?).map_err(|e| bad(49, e.to_string()))?;
    let value: u64 = digits(m, 4)?
        .parse()
        .map_err(|_| bad(4, "must be at most 12 digits"))?;
    let amount = Money::new(value, currency).map_err(|e| bad(4, e.to_string()))?;
    if amount.value == 0 {
        return Err(bad(4, "must not be zero"));
    }
    let timestamp = transmission_time(m, now)?;
    let offset = utc_offset(m, timestamp)?;
    let de14 = digits(m, 14)?;
    if de14.len() != 4 {
        return Err(bad(14, "must be YYMM"));
    }
    let expiry = Expiry::parse(&format!("20{}-{}", &de14[..2], &de14[2..]))
        .map_err(|e| bad(14, e.to_string()))?;
    let mcc = Mcc::parse(digits(m, 18)?).map_err(|e| bad(18, e.to_string()))?;
    let de43 = text(m, 43)?;
    if de43.len() != 40 {
        return Err(bad(
            43,
            "must be 40 characters: name 25, city 13, country 2",
        ));
    }
    let name = de43[..25].trim();
    let city = de43[25..38].trim();
    let country = Country::parse(&de43[38..40]).map_err(|e| bad(43, e.to_string()))?;
    let location = cardguard_gazetteer::lookup(country.as_str(), city)
        .and_then(|c| Location::new(c.lat, c.lon).ok());
    let merchant = Merchant {
        id: text(m, 42)?.trim().to_owned(),
        terminal_id: text(m, 41)?.trim().to_owned(),
        name: if name.is_empty() {
            "-".into()
        } else {
            name.to_owned()
        },
        mcc,
        country,
        city: city.to_owned(),
        location,
    };
    if merchant.id.is_empty() || merchant.terminal_id.is_empty() {
        return Err(bad(42, "merchant and terminal (DE41) must not be blank"));
    }
    let channel = channel(m, mcc);
    let auth = Authorization {
        id: request_id(m)?,
        timestamp,
        card: CardData {
            pan,
            expiry,
            csc: None,
            pin_block: pin_block(m)?,
        },
        amount,
        merchant,
        channel,
        tx_type,
        device: None,
        email_domain: None,
        authentication: None,
    };
    Ok((auth, offset))
}

/// The response to `req` (its MTI plus 10) with the echoed fields and `de39`.
pub fn response(req: &Message, de39: &str) -> Message {
    let mti = response_mti(&req.mti);
    let mut r = Message::new(&mti);
    for n in ECHOED {
        if let Some(v) = req.get(n) {
            r.set(n, v.to_vec());
        }
    }
    if let Some(v) = req.get(70) {
        r.set(70, v.to_vec());
    }
    r.set(39, de39.as_bytes().to_vec());
    r
}

/// The MTI of the response to `mti` (0100 → 0110, 0800 → 0810).
pub fn response_mti(mti: &str) -> String {
    let mut b: Vec<u8> = mti.bytes().collect();
    if b.len() == 4 && b[2].is_ascii_digit() {
        b[2] = if b[2].is_multiple_of(2) {
            b[2] + 1
        } else {
            b[2]
        };
    }
    String::from_utf8(b).unwrap_or_else(|_| mti.to_owned())
}

/// The response to an authorization the application decided.
pub fn decided(req: &Message, rec: &AuthRecord) -> Message {
    let code = rec.outcome.response_code.as_str();
    let mut r = response(req, code);
    if code == "00" {
        // The approval code: six digits from cardguard's authorization number.
        let n = cardguard_engine::authorization_number(&rec.authorization_id).unwrap_or(0);
        r.set(38, format!("{:06}", n % 1_000_000));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tokyo_auth() -> Message {
        let mut m = Message::new("0100");
        m.set(2, "4123456789012349")
            .set(3, "000000")
            .set(4, "000000012800")
            .set(7, "1201011500")
            .set(11, "000042")
            .set(12, "101500")
            .set(13, "1201")
            .set(14, "2912")
            .set(18, "5732")
            .set(22, "051")
            .set(37, "633510000042")
            .set(41, "TERM0007")
            .set(42, "MERCHANT0000042")
            .set(
                43,
                format!("{:<25}{:<13}JP", "BIC CAMERA YURAKUCHO", "TOKYO"),
            )
            .set(49, "392")
            .set(52, "0412AC89ABCDEF67");
        m
    }

    #[test]
    fn an_authorization_reads_as_the_fields_say() {
        let now = Timestamp::parse_rfc3339("2026-12-01T01:20:00Z").unwrap();
        let (a, offset) = authorization(&tokyo_auth(), now).unwrap();
        assert_eq!(
            a.timestamp,
            Timestamp::parse_rfc3339("2026-12-01T01:15:00Z").unwrap()
        );
        assert_eq!(offset, 540, "Tokyo is 9 hours ahead");
        assert_eq!(a.amount, Money::new(12800, Currency::JPY).unwrap());
        assert_eq!(
            (a.card.expiry.year, a.channel, a.tx_type),
            (2029, Channel::CardPresent, TxType::Purchase)
        );
        let loc = a.merchant.location.unwrap();
        assert!((loc.lat - 35.69).abs() < 0.1 && (loc.lon - 139.69).abs() < 0.1);
        assert_eq!(a.merchant.city, "TOKYO");
        assert_eq!(a.card.pin_block.as_ref().map(Vec::len), Some(8));
        assert_eq!(a.id, "iso:TERM0007:000042:1201011500:633510000042");
        // Sent on 31 December, read on 1 January: last year's.
        let mut m = tokyo_auth();
        m.set(7, "1231235959").set(13, "1231").set(12, "235959");
        let jan = Timestamp::parse_rfc3339("2027-01-01T00:00:10Z").unwrap();
        let (a, _) = authorization(&m, jan).unwrap();
        assert_eq!(a.timestamp.ymd().0, 2026);
    }

    #[test]
    fn bad_fields_are_named_and_channels_follow_the_entry_mode() {
        let now = Timestamp::parse_rfc3339("2026-12-01T01:20:00Z").unwrap();
        for (n, v) in [
            (2u8, "41234"),
            (3, "990000"),
            (49, "999"),
            (14, "2913"),
            (43, "SHORT"),
        ] {
            let mut m = tokyo_auth();
            m.set(n, v);
            let e = authorization(&m, now).unwrap_err();
            assert_eq!(e.field, n, "{e}");
            assert!(!e.to_string().contains("4123456789012349"));
        }
        let mut m = tokyo_auth();
        m.fields.remove(&14);
        assert_eq!(authorization(&m, now).unwrap_err().field, 14);
        let mut m = tokyo_auth();
        m.set(22, "812");
        assert_eq!(
            authorization(&m, now).unwrap().0.channel,
            Channel::Ecommerce
        );
        m.set(22, "051").set(18, "6011");
        assert_eq!(authorization(&m, now).unwrap().0.channel, Channel::Atm);
        m.set(25, "08");
        assert_eq!(authorization(&m, now).unwrap().0.channel, Channel::Moto);
    }

    #[test]
    fn a_reversal_names_its_original_by_de90_or_by_its_own_numbers() {
        let mut r = tokyo_auth();
        r.mti = "0400".into();
        r.set(11, "000099").set(7, "1201011530");
        r.set(90, format!("0100000042{}{:022}", "1201011500", 0));
        let req = reversal(&r).unwrap();
        assert_eq!(
            req.original,
            Original::Request("iso:TERM0007:000042:1201011500:633510000042".into())
        );
        assert_eq!(
            req.reference.as_deref(),
            Some("iso:TERM0007:000099:1201011530:633510000042")
        );
        assert_eq!(req.amount, Some(Money::new(12800, Currency::JPY).unwrap()));
        assert_eq!(
            (req.pan.is_some(), req.source.as_str()),
            (true, "iso8583 0400")
        );
        // Without DE90 the reversal repeats the original's STAN and time.
        r.fields.remove(&90);
        r.fields.remove(&2);
        r.fields.remove(&4);
        let req = reversal(&r).unwrap();
        assert_eq!(
            req.original,
            Original::Request("iso:TERM0007:000099:1201011530:633510000042".into())
        );
        assert!(req.pan.is_none() && req.amount.is_none());
        for bad in ["0100", "0110000042120101150000", "01000000AB1201011500"] {
            r.set(90, bad);
            assert_eq!(reversal(&r).unwrap_err().field, 90, "{bad}");
        }
        assert!(!is_partial(&r));
        r.set(95, format!("{:042}", 0));
        assert!(
            !is_partial(&r),
            "a replacement amount of zero is a full reversal"
        );
        r.set(95, format!("{:012}{:030}", 5000, 0));
        assert!(is_partial(&r));
    }

    #[test]
    fn responses_echo_the_request_and_carry_the_code() {
        let r = response(&tokyo_auth(), "05");
        assert_eq!(r.mti, "0110");
        assert_eq!(r.text(39), Some("05"));
        assert_eq!(r.text(11), Some("000042"));
        assert_eq!(r.text(37), Some("633510000042"));
        assert!(
            !r.has(52) && !r.has(43),
            "the PIN block and DE43 are not echoed"
        );
        assert_eq!(response_mti("0800"), "0810");
        assert_eq!(response_mti("0200"), "0210");
        assert_eq!(response_mti("0420"), "0430");
    }
}
