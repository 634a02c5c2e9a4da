//! DNS answers for the verifier: a cache of live lookups, or a fixed zone that answers every
//! question offline (tests, air-gapped desks, replaying how a message verified on a day).
//!
//! The zone file has one record per line, `name TYPE data`, `#` starting a comment:
//!
//! ```text
//! example.com                    TXT "v=spf1 ip4:192.0.2.0/24 -all"
//! sel._domainkey.example.com     TXT "v=DKIM1; k=ed25519; " "p=11qYAYKx..."
//! _dmarc.example.com             TXT "v=DMARC1; p=reject"
//! mail.example.com               A    192.0.2.25
//! example.com                    MX   10 mail.example.com
//! 192.0.2.25                     PTR  mail.example.com
//! ```
//!
//! A TXT record is read as what its name says it is: DKIM keys under `_domainkey.`, DMARC
//! policies under `_dmarc.`, SPF where the text starts with `v=spf1`; the strings of one record
//! are joined as DNS joins them.

use crate::AuthError;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{DnsError, DnssecStatus, Error, MX, Parameters, RecordSet, ResolverCache, Txt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most entries a live cache keeps before it starts over (bounds memory).
const MAX_ENTRIES: usize = 10_000;

/// One record type's answers, keyed by name (or by IP for PTR).
pub struct Records<K, V> {
    map: Mutex<HashMap<K, (V, Option<Instant>)>>,
    /// Offline: a name the zone lacks does not exist.
    negative: Option<V>,
}

impl<K: Hash + Eq, V: Clone> Records<K, V> {
    fn new(negative: Option<V>) -> Self {
        Records {
            map: Mutex::new(HashMap::new()),
            negative,
        }
    }

    fn put(&self, key: K, value: V, until: Option<Instant>) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ENTRIES && !m.contains_key(&key) {
            m.clear();
        }
        m.insert(key, (value, until));
    }

    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Records<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(name) {
            Some((v, until)) if until.is_none_or(|u| Instant::now() < u) => Some(v.clone()),
            _ => self.negative.clone(),
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.put(key, value, Some(valid_until));
    }
}

/// A check's parameters with a zone's records as its caches.
pub(crate) type Cached<'x, P> = Parameters<
    'x,
    P,
    Records<Box<str>, Txt>,
    Records<Box<str>, RecordSet<MX>>,
    Records<Box<str>, RecordSet<Ipv4Addr>>,
    Records<Box<str>, RecordSet<Ipv6Addr>>,
    Records<IpAddr, RecordSet<Box<str>>>,
>;

/// The answers the verifier asks for, by record type.
pub struct Zone {
    pub(crate) txt: Records<Box<str>, Txt>,
    pub(crate) mx: Records<Box<str>, RecordSet<MX>>,
    pub(crate) ipv4: Records<Box<str>, RecordSet<Ipv4Addr>>,
    pub(crate) ipv6: Records<Box<str>, RecordSet<Ipv6Addr>>,
    pub(crate) ptr: Records<IpAddr, RecordSet<Box<str>>>,
    offline: bool,
}

fn empty<T>() -> RecordSet<T> {
    RecordSet {
        rrset: Arc::from(Vec::new()),
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

fn set<T>(v: Vec<T>) -> RecordSet<T> {
    RecordSet {
        rrset: Arc::from(v),
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

/// `Example.COM` and `example.com.` are the same name: lowercase with the root dot.
fn fqdn(name: &str) -> Box<str> {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') {
        n.into()
    } else {
        format!("{n}.").into()
    }
}

impl Zone {
    /// An empty cache in front of a live resolver: answers are kept for their TTL.
    pub fn live() -> Self {
        Zone {
            txt: Records::new(None),
            mx: Records::new(None),
            ipv4: Records::new(None),
            ipv6: Records::new(None),
            ptr: Records::new(None),
            offline: false,
        }
    }

    /// A fixed zone: the records in `text` are the whole DNS, every other name does not exist.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let nx = Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)));
        let z = Zone {
            txt: Records::new(Some(nx)),
            mx: Records::new(Some(empty())),
            ipv4: Records::new(Some(empty())),
            ipv6: Records::new(Some(empty())),
            ptr: Records::new(Some(empty())),
            offline: true,
        };
        let mut mx: HashMap<Box<str>, Vec<MX>> = HashMap::new();
        let mut a: HashMap<Box<str>, Vec<Ipv4Addr>> = HashMap::new();
        let mut aaaa: HashMap<Box<str>, Vec<Ipv6Addr>> = HashMap::new();
        let mut ptr: HashMap<IpAddr, Vec<Box<str>>> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let bad = |why: &str| AuthError::Zone {
                line: line_no,
                why: why.to_owned(),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.splitn(3, char::is_whitespace);
            let (Some(name), Some(kind), Some(data)) = (it.next(), it.next(), it.next()) else {
                return Err(bad("expected: name TYPE data"));
            };
            let data = data.trim();
            let key = fqdn(name);
            match kind.to_ascii_uppercase().as_str() {
                "TXT" => {
                    let text = txt_strings(data).ok_or_else(|| bad("TXT data must be quoted"))?;
                    let record = typed_txt(&key, text.as_bytes())
                        .ok_or_else(|| bad("TXT record is not SPF, DKIM or DMARC"))?;
                    z.txt.put(key, record, None);
                }
                "A" => a
                    .entry(key)
                    .or_default()
                    .push(data.parse().map_err(|_| bad("bad IPv4 address"))?),
                "AAAA" => aaaa
                    .entry(key)
                    .or_default()
                    .push(data.parse().map_err(|_| bad("bad IPv6 address"))?),
                "MX" => {
                    let (pref, host) = data
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| bad("expected: MX preference host"))?;
                    let preference = pref.parse().map_err(|_| bad("bad MX preference"))?;
                    let e = mx.entry(key).or_default();
                    match e.iter_mut().find(|m| m.preference == preference) {
                        Some(m) => {
                            let mut hosts = m.exchanges.to_vec();
                            hosts.push(fqdn(host));
                            m.exchanges = hosts.into_boxed_slice();
                        }
                        None => e.push(MX {
                            exchanges: vec![fqdn(host)].into_boxed_slice(),
                            preference,
                        }),
                    }
                }
                "PTR" => {
                    let ip: IpAddr = name.parse().map_err(|_| bad("PTR name must be an IP"))?;
                    ptr.entry(ip).or_default().push(fqdn(data));
                }
                _ => return Err(bad("type must be TXT, A, AAAA, MX or PTR")),
            }
        }
        for (k, mut v) in mx {
            v.sort_by_key(|m| m.preference);
            z.mx.put(k, set(v), None);
        }
        for (k, v) in a {
            z.ipv4.put(k, set(v), None);
        }
        for (k, v) in aaaa {
            z.ipv6.put(k, set(v), None);
        }
        for (k, v) in ptr {
            z.ptr.put(k, set(v), None);
        }
        Ok(z)
    }

    /// mail-auth's parameters for a check, with this zone as every DNS cache.
    pub(crate) fn params<P>(&self, p: P) -> Cached<'_, P> {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }

    /// Whether this zone answers everything itself.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// How many names hold answers (all types).
    pub fn len(&self) -> usize {
        self.txt.len() + self.mx.len() + self.ipv4.len() + self.ipv6.len() + self.ptr.len()
    }

    /// Whether no name holds an answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The quoted strings of a TXT record, joined; `None` when a quote is missing.
fn txt_strings(data: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = data.trim();
    if !rest.starts_with('"') {
        return None;
    }
    while let Some(r) = rest.strip_prefix('"') {
        let mut end = None;
        let mut escaped = false;
        for (i, c) in r.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => {
                    if escaped && c != '"' && c != '\\' {
                        out.push('\\');
                    }
                    escaped = false;
                    out.push(c);
                }
            }
        }
        let end = end?;
        rest = r[end + 1..].trim_start();
    }
    rest.is_empty().then_some(out)
}

/// The record a TXT text is at its name, parsed as mail-auth parses DNS answers.
fn typed_txt(name: &str, text: &[u8]) -> Option<Txt> {
    let parsed: Txt = if name.contains("._domainkey.") {
        DomainKey::parse(text).into()
    } else if name.starts_with("_dmarc.") {
        Dmarc::parse(text).into()
    } else if text.len() >= 6 && text[..6].eq_ignore_ascii_case(b"v=spf1") {
        Spf::parse(text).into()
    } else {
        return None;
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_type_and_answers_misses_as_nonexistent() {
        let z = Zone::parse(
            "# a comment\n\
             Example.com TXT \"v=spf1 ip4:192.0.2.0/24 \" \"-all\"\n\
             _dmarc.example.com TXT \"v=DMARC1; p=reject\"\n\
             mail.example.com A 192.0.2.25\n\
             mail.example.com AAAA 2001:db8::25\n\
             example.com MX 10 mail.example.com\n\
             example.com MX 20 backup.example.com\n\
             192.0.2.25 PTR mail.example.com\n",
        )
        .unwrap();
        assert!(z.is_offline());
        assert!(matches!(z.txt.get("example.com."), Some(Txt::Spf(_))));
        assert!(matches!(
            z.txt.get("_dmarc.example.com."),
            Some(Txt::Dmarc(_))
        ));
        assert!(matches!(
            z.txt.get("nowhere.example."),
            Some(Txt::Error(Error::Dns(DnsError::RecordNotFound(_))))
        ));
        let mx = z.mx.get("example.com.").unwrap();
        assert_eq!(mx.rrset.len(), 2);
        assert_eq!(mx.rrset[0].preference, 10);
        assert_eq!(
            z.ipv4.get("mail.example.com.").unwrap().rrset[0],
            Ipv4Addr::new(192, 0, 2, 25)
        );
        assert_eq!(z.ipv6.get("mail.example.com.").unwrap().rrset.len(), 1);
        assert!(z.ipv4.get("other.example.").unwrap().rrset.is_empty());
        let ip: IpAddr = "192.0.2.25".parse().unwrap();
        assert_eq!(&*z.ptr.get(&ip).unwrap().rrset[0], "mail.example.com.");
    }

    #[test]
    fn joins_strings_and_keeps_escapes() {
        assert_eq!(txt_strings(r#""a" "b""#).as_deref(), Some("ab"));
        assert_eq!(
            txt_strings(r#""say \"hi\"""#).as_deref(),
            Some("say \"hi\"")
        );
        assert_eq!(txt_strings(r#""open"#), None);
        assert_eq!(txt_strings("bare"), None);
        assert_eq!(txt_strings(r#""a" trailing"#), None);
    }

    #[test]
    fn bad_lines_name_their_line() {
        for (text, line) in [
            ("a.example TXT \"v=spf1 -all\"\nb.example A nope\n", 2),
            ("x.example\n", 1),
            ("x.example TXT \"hello\"\n", 1),
            ("x.example SRV 1 2 3\n", 1),
            ("not-an-ip PTR host.example\n", 1),
        ] {
            match Zone::parse(text) {
                Err(AuthError::Zone { line: l, .. }) => assert_eq!(l, line, "{text}"),
                Err(e) => panic!("{text}: {e}"),
                Ok(_) => panic!("{text}: accepted"),
            }
        }
    }

    #[test]
    fn live_cache_forgets_expired_answers() {
        let z = Zone::live();
        assert!(!z.is_offline());
        let past = Instant::now();
        z.ipv4
            .insert("a.example.".into(), set(vec![Ipv4Addr::LOCALHOST]), past);
        assert!(z.ipv4.get("a.example.").is_none());
        let later = Instant::now() + std::time::Duration::from_secs(60);
        z.ipv4
            .insert("a.example.".into(), set(vec![Ipv4Addr::LOCALHOST]), later);
        assert!(z.ipv4.get("a.example.").is_some());
    }
}
