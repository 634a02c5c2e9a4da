//! Lookalike domains an issuer should watch for (the permutations dnstwist makes) and the
//! check of one URL against the brand registry.

use crate::brand::{BrandRegistry, registrable};
use std::collections::BTreeSet;

/// One permutation and the technique that made it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Permutation {
    pub domain: String,
    pub technique: &'static str,
}

const KEYBOARD: &[(&str, &str)] = &[
    ("q", "12wa"),
    ("w", "23qase"),
    ("e", "34wsdr"),
    ("r", "45edft"),
    ("t", "56rfgy"),
    ("y", "67tghu"),
    ("u", "78yhji"),
    ("i", "89ujko"),
    ("o", "90iklp"),
    ("p", "0ol"),
    ("a", "qwsz"),
    ("s", "weadzx"),
    ("d", "erfcxs"),
    ("f", "rtgvcd"),
    ("g", "tyhbvf"),
    ("h", "yujnbg"),
    ("j", "uikmnh"),
    ("k", "iolmj"),
    ("l", "opk"),
    ("z", "asx"),
    ("x", "zsdc"),
    ("c", "xdfv"),
    ("v", "cfgb"),
    ("b", "vghn"),
    ("n", "bhjm"),
    ("m", "njk"),
];
const HOMOGLYPHS: &[(char, &[&str])] = &[
    ('a', &["à", "á", "â", "ä", "а"]),
    ('b', &["d", "lb"]),
    ('c', &["е", "ç", "с"]),
    ('d', &["b", "cl", "dl"]),
    ('e', &["é", "è", "ê", "ë", "е"]),
    ('g', &["q", "ɡ"]),
    ('h', &["lh", "һ"]),
    ('i', &["1", "l", "í", "і"]),
    ('k', &["lk", "ik"]),
    ('l', &["1", "i", "|"]),
    ('m', &["n", "nn", "rn"]),
    ('n', &["m", "r"]),
    ('o', &["0", "ο", "о", "ö"]),
    ('p', &["р"]),
    ('q', &["g"]),
    ('s', &["ѕ", "5"]),
    ('u', &["v", "ü", "υ"]),
    ('v', &["u", "ν"]),
    ('w', &["vv", "ѡ"]),
    ('x', &["х"]),
    ('y', &["у", "ý"]),
    ('z', &["2"]),
];
const VOWELS: &[char] = &['a', 'e', 'i', 'o', 'u'];
const TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "co", "jp", "co.jp", "ne.jp", "cn", "xyz", "top", "online",
    "site", "app", "io", "us", "ru",
];

/// The lookalike permutations of a domain (`americanexpress.com`): addition, bitsquatting,
/// homoglyph, hyphenation, insertion, omission, repetition, replacement, subdomain,
/// transposition, vowel swap and TLD swap. Homoglyph domains are given in punycode too.
pub fn permutations(domain: &str) -> Vec<Permutation> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let reg = registrable(&domain);
    let suffix = psl::suffix_str(&reg).unwrap_or("").to_owned();
    let name = reg
        .strip_suffix(&suffix)
        .unwrap_or(&reg)
        .trim_end_matches('.')
        .to_owned();
    if name.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = name.chars().collect();
    let mut out: BTreeSet<Permutation> = BTreeSet::new();
    let add = |n: String, t: &'static str, out: &mut BTreeSet<Permutation>| {
        if n != name && !n.is_empty() && !n.starts_with('-') && !n.ends_with('-') {
            out.insert(Permutation {
                domain: format!("{n}.{suffix}"),
                technique: t,
            });
        }
    };
    for c in 'a'..='z' {
        add(format!("{name}{c}"), "addition", &mut out);
    }
    for (i, &c) in chars.iter().enumerate() {
        let at = |s: &str| -> String {
            let mut v: String = chars[..i].iter().collect();
            v.push_str(s);
            v.extend(&chars[i + 1..]);
            v
        };
        // bitsquatting: one bit flipped, still a valid host character
        if c.is_ascii() {
            for bit in 0..8 {
                let f = char::from((c as u8) ^ (1 << bit));
                if f.is_ascii_lowercase() || f.is_ascii_digit() || f == '-' {
                    add(at(&f.to_string()), "bitsquatting", &mut out);
                }
            }
        }
        if let Some((_, gl)) = HOMOGLYPHS.iter().find(|(k, _)| *k == c) {
            for g in *gl {
                add(at(g), "homoglyph", &mut out);
            }
        }
        if i > 0 {
            let mut v: String = chars[..i].iter().collect();
            v.push('-');
            v.extend(&chars[i..]);
            add(v, "hyphenation", &mut out);
        }
        if let Some((_, keys)) = KEYBOARD.iter().find(|(k, _)| k.starts_with(c)) {
            for k in keys.chars() {
                let mut v: String = chars[..=i].iter().collect();
                v.push(k);
                v.extend(&chars[i + 1..]);
                add(v, "insertion", &mut out);
                add(at(&k.to_string()), "replacement", &mut out);
            }
        }
        add(at(""), "omission", &mut out);
        add(at(&format!("{c}{c}")), "repetition", &mut out);
        if i + 1 < chars.len() && chars[i] != chars[i + 1] {
            let mut v = chars.clone();
            v.swap(i, i + 1);
            add(v.into_iter().collect(), "transposition", &mut out);
        }
        if VOWELS.contains(&c) {
            for &v in VOWELS.iter().filter(|&&v| v != c) {
                add(at(&v.to_string()), "vowel-swap", &mut out);
            }
        }
    }
    for i in 1..chars.len() {
        let a: String = chars[..i].iter().collect();
        let b: String = chars[i..].iter().collect();
        if !a.ends_with('-') && !b.starts_with('-') {
            out.insert(Permutation {
                domain: format!("{a}.{b}.{suffix}"),
                technique: "subdomain",
            });
        }
    }
    for t in TLDS.iter().filter(|t| **t != suffix) {
        out.insert(Permutation {
            domain: format!("{name}.{t}"),
            technique: "tld-swap",
        });
    }
    let mut v: Vec<Permutation> = out.into_iter().collect();
    for p in &mut v {
        if !p.domain.is_ascii()
            && let Ok(a) = idna::domain_to_ascii(&p.domain)
        {
            p.domain = format!("{} ({a})", p.domain);
        }
    }
    v
}

/// What a URL check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UrlCheck {
    pub url: String,
    pub host: Option<String>,
    /// `official` (a brand's own), `imitation`, `ip`, or `unknown`.
    pub verdict: &'static str,
    pub brand: Option<String>,
    pub reasons: Vec<crate::Finding>,
}

/// Whether a URL imitates a registered brand, and why.
pub fn check_url(url: &str, reg: &BrandRegistry) -> UrlCheck {
    let raw = format!(
        "From: check <check@invalid.invalid>\r\nSubject: url\r\nContent-Type: text/html\r\n\r\n<a href=\"{}\">link</a>",
        url.replace('"', "%22")
    );
    let host = crate::links::host_of(url);
    let owner = host.as_deref().and_then(|h| reg.owner_of(h));
    let opts = crate::analyze::Options {
        loose_lookalikes: true,
        ..Default::default()
    };
    let report = crate::analyze::analyze_with(raw.as_bytes(), reg, &opts).ok();
    let reasons: Vec<crate::Finding> = report
        .as_ref()
        .map(|r| {
            r.reasons
                .iter()
                .filter(|f| !matches!(f.code, "SENDER_NOT_OFFICIAL_DOMAIN" | "LINK_NOT_OFFICIAL"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let verdict = if owner.is_some() {
        "official"
    } else if reasons.iter().any(|f| f.code == "IP_URL") {
        "ip"
    } else if !reasons.is_empty() {
        "imitation"
    } else {
        "unknown"
    };
    UrlCheck {
        url: url.to_owned(),
        host,
        verdict,
        brand: owner
            .map(|b| b.display_name().to_owned())
            .or(report.and_then(|r| r.brand)),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_technique_appears() {
        let p = permutations("americanexpress.com");
        for t in [
            "addition",
            "bitsquatting",
            "homoglyph",
            "hyphenation",
            "insertion",
            "omission",
            "repetition",
            "replacement",
            "subdomain",
            "transposition",
            "vowel-swap",
            "tld-swap",
        ] {
            assert!(p.iter().any(|x| x.technique == t), "{t}");
        }
        assert!(p.iter().any(|x| x.domain == "americanexpres.com"));
        assert!(
            p.iter()
                .any(|x| x.domain == "americanexpress.co.jp" || x.domain == "americanexpress.jp")
        );
        assert!(!p.iter().any(|x| x.domain == "americanexpress.com"));
    }

    #[test]
    fn urls_are_checked_against_the_registry() {
        let reg = BrandRegistry::builtin();
        assert_eq!(
            check_url("https://www.americanexpress.com/ja-jp/", &reg).verdict,
            "official"
        );
        let c = check_url(
            "http://www.americeexpre.account-login.qkdbq.com/Xapz.php",
            &reg,
        );
        assert_eq!(c.verdict, "imitation", "{c:?}");
        assert_eq!(c.brand.as_deref(), Some("American Express"));
        assert_eq!(check_url("http://10.1.2.3/login", &reg).verdict, "ip");
        assert_eq!(check_url("https://example.org/", &reg).verdict, "unknown");
    }
}
