//! Allow and block lists that rules name (`:merchant_id: in @blocked_merchants`): what each
//! kind of list holds (cards, merchants, terminals, devices, IP ranges, countries, email
//! domains), how an item is checked and written, and the set of lists the engine consults.
//! A list's kind is the last word of its name (`vip_cards`, `blocked_ips`), so a rule can
//! name a list before it has items. Items may expire (a block for 24 hours).

use cardguard_core::{CardToken, Country};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Cards,
    Merchants,
    Terminals,
    Devices,
    Ips,
    Countries,
    EmailDomains,
}

/// Why a list name or item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error(
        "a list name is 1 to 64 lower-case letters, digits and _, ending in what it holds: _cards, _merchants, _terminals, _devices, _ips, _countries or _email_domains"
    )]
    Name,
    /// The value is not echoed: a card list's item could be a card number sent by mistake.
    #[error("the value is not {what}")]
    Item { what: &'static str },
}

impl ListKind {
    const SUFFIXES: [(&'static str, ListKind); 7] = [
        ("_cards", ListKind::Cards),
        ("_merchants", ListKind::Merchants),
        ("_terminals", ListKind::Terminals),
        ("_devices", ListKind::Devices),
        ("_ips", ListKind::Ips),
        ("_countries", ListKind::Countries),
        ("_email_domains", ListKind::EmailDomains),
    ];

    /// The kind of the list called `name`, when the name is well formed.
    pub fn of_name(name: &str) -> Result<ListKind, ListError> {
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            return Err(ListError::Name);
        }
        Self::SUFFIXES
            .iter()
            .find(|(s, _)| name.ends_with(s) && name.len() > s.len())
            .map(|(_, k)| *k)
            .ok_or(ListError::Name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Cards => "cards",
            ListKind::Merchants => "merchants",
            ListKind::Terminals => "terminals",
            ListKind::Devices => "devices",
            ListKind::Ips => "ips",
            ListKind::Countries => "countries",
            ListKind::EmailDomains => "email_domains",
        }
    }

    /// What its items are, in words.
    pub fn describe(self) -> &'static str {
        match self {
            ListKind::Cards => "card tokens",
            ListKind::Merchants => "merchant ids",
            ListKind::Terminals => "terminal ids",
            ListKind::Devices => "device ids",
            ListKind::Ips => "IP addresses and ranges",
            ListKind::Countries => "countries",
            ListKind::EmailDomains => "email domains",
        }
    }

    /// The rule attributes whose values a list of this kind holds.
    pub fn attributes(self) -> &'static [&'static str] {
        match self {
            ListKind::Cards => &["card"],
            ListKind::Merchants => &["merchant_id"],
            ListKind::Terminals => &["terminal_id"],
            ListKind::Devices => &["device_id"],
            ListKind::Ips => &["ip"],
            ListKind::Countries => &["merchant_country", "card_country", "ip_country"],
            ListKind::EmailDomains => &["email_domain"],
        }
    }

    /// The item as the list keeps it (a country in capitals, an IP range as its network),
    /// or why it cannot be one.
    pub fn normalize(self, value: &str) -> Result<String, ListError> {
        let bad = |what| ListError::Item { what };
        let v = value.trim();
        match self {
            ListKind::Cards => CardToken::parse(v)
                .map(|t| t.to_string())
                .map_err(|_| bad("a card token (32 hex digits)")),
            ListKind::Merchants | ListKind::Terminals | ListKind::Devices => {
                if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                    Err(bad("an id (1 to 128 characters)"))
                } else {
                    Ok(v.to_owned())
                }
            }
            ListKind::Ips => IpRange::parse(v)
                .map(|r| r.to_string())
                .ok_or_else(|| bad("an IP address or range (203.0.113.0/24, 2001:db8::/32)")),
            ListKind::Countries => Country::parse(&v.to_ascii_uppercase())
                .map(|c| c.as_str().to_owned())
                .map_err(|_| bad("an ISO 3166 country code (JP)")),
            ListKind::EmailDomains => {
                let d = v.trim_end_matches('.').to_ascii_lowercase();
                let ok = d.len() <= 253
                    && d.contains('.')
                    && d.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && !l.starts_with('-')
                            && !l.ends_with('-')
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if ok {
                    Ok(d)
                } else {
                    Err(bad("an email domain (example.com)"))
                }
            }
        }
    }
}

/// An IP network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        let low = u32::from(width - prefix);
        (all >> low) << low
    }
}

impl IpRange {
    /// `203.0.113.7`, `203.0.113.0/24` or `2001:db8::/32`; host bits below the prefix are
    /// cleared.
    pub fn parse(s: &str) -> Option<IpRange> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let (value, width) = bits(ip);
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= width)?
            }
            Some(_) => return None,
            None => width,
        };
        let net = value & mask(prefix, width);
        let net = match ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(net as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(net)),
        };
        Some(IpRange { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, wa) = bits(ip);
        let (n, wn) = bits(self.net);
        wa == wn && a & mask(self.prefix, wa) == n
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// One list's items, each with its expiry (ms since the epoch; none: never).
#[derive(Debug, Clone)]
pub struct List {
    kind: ListKind,
    items: HashMap<String, Option<i64>>,
    ranges: Vec<(IpRange, Option<i64>)>,
}

impl List {
    pub fn new(kind: ListKind) -> List {
        List {
            kind,
            items: HashMap::new(),
            ranges: Vec::new(),
        }
    }

    pub fn kind(&self) -> ListKind {
        self.kind
    }

    /// Adds or replaces an item already normalized by [`ListKind::normalize`].
    pub fn insert(&mut self, value: String, expires_ms: Option<i64>) {
        if self.kind == ListKind::Ips
            && let Some(r) = IpRange::parse(&value)
        {
            self.ranges.retain(|(x, _)| *x != r);
            self.ranges.push((r, expires_ms));
        }
        self.items.insert(value, expires_ms);
    }

    pub fn remove(&mut self, value: &str) -> bool {
        if self.kind == ListKind::Ips
            && let Some(r) = IpRange::parse(value)
        {
            self.ranges.retain(|(x, _)| *x != r);
        }
        self.items.remove(value).is_some()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the list holds `value` at `now_ms` (an IP list: a range holds the address).
    pub fn contains(&self, value: &str, now_ms: i64) -> bool {
        let live = |e: &Option<i64>| e.is_none_or(|t| t > now_ms);
        if self.kind == ListKind::Ips {
            let Ok(ip) = value.parse::<IpAddr>() else {
                return false;
            };
            return self.ranges.iter().any(|(r, e)| live(e) && r.contains(ip));
        }
        self.items.get(value).is_some_and(live)
    }
}

/// Every list, by name. Changing one list copies only that list: the engine swaps the whole
/// set in at once, so that the next authorization sees the change.
#[derive(Debug, Clone, Default)]
pub struct ListSet {
    lists: HashMap<String, Arc<List>>,
}

impl ListSet {
    pub fn get(&self, name: &str) -> Option<&List> {
        self.lists.get(name).map(|l| l.as_ref())
    }

    /// The set with `name` changed by `f` (the list is created empty first when absent).
    pub fn with_change(&self, name: &str, f: impl FnOnce(&mut List)) -> Result<ListSet, ListError> {
        let kind = ListKind::of_name(name)?;
        let mut next = self.clone();
        let list = next
            .lists
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(List::new(kind)));
        f(Arc::make_mut(list));
        Ok(next)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lists.keys().map(String::as_str)
    }
}

/// Whether `:attribute: in @list` may be written: the name is a list's, and the list holds
/// values of that attribute.
pub fn check_list_use(list: &str, attribute: &str) -> Result<(), String> {
    let kind = ListKind::of_name(list).map_err(|e| format!("unknown list @{list}: {e}"))?;
    if kind.attributes().contains(&attribute) {
        Ok(())
    } else {
        Err(format!(
            "@{list} holds {}; it can be matched with {}, not :{attribute}:",
            kind.describe(),
            kind.attributes()
                .iter()
                .map(|a| format!(":{a}:"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_names() {
        assert_eq!(
            ListKind::of_name("blocked_merchants"),
            Ok(ListKind::Merchants)
        );
        assert_eq!(ListKind::of_name("vip_cards"), Ok(ListKind::Cards));
        assert_eq!(
            ListKind::of_name("risky_email_domains"),
            Ok(ListKind::EmailDomains)
        );
        for bad in ["merchants", "_ips", "Blocked_ips", "blocked", "a-b_ips", ""] {
            assert_eq!(ListKind::of_name(bad), Err(ListError::Name), "{bad}");
        }
        assert!(check_list_use("blocked_ips", "ip").is_ok());
        assert!(check_list_use("blocked_countries", "ip_country").is_ok());
        let e = check_list_use("blocked_ips", "merchant_id").unwrap_err();
        assert!(e.contains("not :merchant_id:"), "{e}");
        assert!(
            check_list_use("nope", "ip")
                .unwrap_err()
                .starts_with("unknown list @nope")
        );
    }

    #[test]
    fn items_are_checked_and_written_one_way() {
        let ips = ListKind::Ips;
        assert_eq!(ips.normalize("203.0.113.77/24").unwrap(), "203.0.113.0/24");
        assert_eq!(ips.normalize("198.51.100.1").unwrap(), "198.51.100.1/32");
        assert_eq!(ips.normalize("2001:db8::1/32").unwrap(), "2001:db8::/32");
        assert_eq!(ips.normalize("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        for bad in [
            "300.1.1.1",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
        ] {
            assert!(ips.normalize(bad).is_err(), "{bad}");
        }
        assert_eq!(ListKind::Countries.normalize("jp").unwrap(), "JP");
        let e = ListKind::Countries.normalize("XX").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value is not an ISO 3166 country code (JP)"
        );
        let e = ListKind::Cards.normalize("4123456789012349").unwrap_err();
        assert!(
            !e.to_string().contains("4123"),
            "no card number in errors: {e}"
        );
        assert_eq!(
            ListKind::EmailDomains
                .normalize("Mail.Example.COM.")
                .unwrap(),
            "mail.example.com"
        );
        assert!(ListKind::EmailDomains.normalize("localhost").is_err());
        assert!(ListKind::Merchants.normalize("").is_err());
    }

    #[test]
    fn ranges_hold_their_addresses_and_items_expire() {
        let set = ListSet::default()
            .with_change("blocked_ips", |l| {
                l.insert("203.0.113.0/24".into(), None);
                l.insert("2001:db8::/32".into(), Some(1_000));
            })
            .unwrap();
        let l = set.get("blocked_ips").unwrap();
        assert!(l.contains("203.0.113.200", 0));
        assert!(!l.contains("203.0.114.1", 0));
        assert!(l.contains("2001:db8:1::5", 999));
        assert!(!l.contains("2001:db8:1::5", 1_000), "expired");
        assert!(!l.contains("not an ip", 0));
        let set2 = set
            .with_change("blocked_ips", |l| {
                l.remove("203.0.113.0/24");
            })
            .unwrap();
        assert!(
            !set2
                .get("blocked_ips")
                .unwrap()
                .contains("203.0.113.200", 0)
        );
        assert!(
            set.get("blocked_ips").unwrap().contains("203.0.113.200", 0),
            "the earlier set is unchanged"
        );
        let m = ListSet::default()
            .with_change("blocked_merchants", |l| l.insert("m-1".into(), Some(50)))
            .unwrap();
        assert!(m.get("blocked_merchants").unwrap().contains("m-1", 49));
        assert!(!m.get("blocked_merchants").unwrap().contains("m-1", 50));
    }

    proptest::proptest! {
        #[test]
        fn items_are_written_one_way_and_ranges_hold_their_network(
            a in 0u8..=255, b in 0u8..=255, c in 0u8..=255, d in 0u8..=255, p in 0u8..=40,
            text in "\\PC{0,40}",
        ) {
            let v4 = format!("{a}.{b}.{c}.{d}/{p}");
            match ListKind::Ips.normalize(&v4) {
                Ok(n) => {
                    proptest::prop_assert!(p <= 32);
                    proptest::prop_assert_eq!(ListKind::Ips.normalize(&n), Ok(n.clone()));
                    let r = IpRange::parse(&n).unwrap();
                    let ip = std::net::IpAddr::from([a, b, c, d]);
                    proptest::prop_assert!(r.contains(ip));
                }
                Err(_) => proptest::prop_assert!(p > 32),
            }
            for k in [ListKind::Cards, ListKind::Merchants, ListKind::Ips, ListKind::Countries, ListKind::EmailDomains] {
                if let Ok(n) = k.normalize(&text) {
                    proptest::prop_assert_eq!(k.normalize(&n), Ok(n.clone()));
                }
            }
        }
    }
}
