//! The brand registry: who phishers pretend to be, the domains that really are theirs, the
//! names people read and the labels lookalike domains imitate.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One brand.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brand {
    #[serde(skip)]
    pub id: String,
    pub names: Vec<String>,
    #[serde(default)]
    pub legal_name: Option<String>,
    #[serde(default)]
    pub mail_domains: Vec<String>,
    #[serde(default)]
    pub web_domains: Vec<String>,
    /// Domain labels a lookalike imitates (`americanexpress`, `paypal`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// The registrable domains of all of the above, computed once.
    #[serde(skip)]
    regs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrandError {
    #[error("brand registry is not valid TOML: {0}")]
    Toml(String),
    #[error("brand {0} has no names")]
    NoNames(String),
}

/// The registrable domain (public suffix list) of a host, lowercase; the host itself when
/// the list does not know its suffix.
pub fn registrable(host: &str) -> String {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&h).map_or(h.clone(), str::to_owned)
}

#[derive(Debug, Clone, Default)]
pub struct BrandRegistry {
    brands: Vec<Brand>,
    /// Every brand name, lowercase, in one automaton; `names[i]` is (brand index, name).
    names_ac: Option<aho_corasick::AhoCorasick>,
    names: Vec<(usize, String)>,
}

const BUILTIN: &str = include_str!("brands.toml");

impl BrandRegistry {
    /// The brands that ship with cardguard.
    pub fn builtin() -> BrandRegistry {
        let mut r = BrandRegistry::default();
        r.merge_toml(BUILTIN)
            .expect("the built-in brand registry parses");
        r
    }

    /// Adds the brands of a TOML document (`[id]` tables); a brand with a known id replaces
    /// the old entry's lists by the union of both.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), BrandError> {
        let t: BTreeMap<String, Brand> =
            toml::from_str(text).map_err(|e| BrandError::Toml(e.to_string()))?;
        for (id, mut b) in t {
            if b.names.is_empty() {
                return Err(BrandError::NoNames(id));
            }
            b.id = id.clone();
            if b.labels.is_empty() {
                b.labels = b
                    .web_domains
                    .iter()
                    .chain(&b.mail_domains)
                    .map(|d| label_of(&registrable(d)))
                    .collect();
            }
            match self.brands.iter_mut().find(|x| x.id == id) {
                Some(old) => {
                    for (dst, src) in [
                        (&mut old.names, b.names),
                        (&mut old.mail_domains, b.mail_domains),
                        (&mut old.web_domains, b.web_domains),
                        (&mut old.labels, b.labels),
                    ] {
                        for v in src {
                            if !dst.contains(&v) {
                                dst.push(v);
                            }
                        }
                    }
                }
                None => self.brands.push(b),
            }
        }
        self.index();
        Ok(())
    }

    /// Recomputes the registrable domains and the name automaton after a change.
    fn index(&mut self) {
        self.names.clear();
        for (i, b) in self.brands.iter_mut().enumerate() {
            let mut regs: Vec<String> = b
                .mail_domains
                .iter()
                .chain(&b.web_domains)
                .map(|d| registrable(d))
                .collect();
            regs.sort();
            regs.dedup();
            b.regs = regs;
            for n in &b.names {
                self.names.push((i, n.to_lowercase()));
            }
        }
        // A full DFA: a few hundred names make a small one, and it searches fastest.
        self.names_ac = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(self.names.iter().map(|(_, n)| n.as_str()))
            .ok();
    }

    /// The brand names that occur in `text_lower` (already lowercase): whole words for
    /// names in Latin letters, anywhere for the others. Each (brand, name) once.
    pub fn names_in<'a>(&'a self, text_lower: &str) -> Vec<(&'a Brand, &'a str)> {
        let mut out: Vec<(&Brand, &str)> = Vec::new();
        let Some(ac) = &self.names_ac else { return out };
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
        for m in ac.find_overlapping_iter(text_lower) {
            let (bi, name) = &self.names[m.pattern().as_usize()];
            if name.is_ascii() {
                let before = text_lower[..m.start()].chars().next_back();
                let after = text_lower[m.end()..].chars().next();
                if !boundary(before) || !boundary(after) {
                    continue;
                }
            }
            let b = &self.brands[*bi];
            if !out.iter().any(|(x, n)| x.id == b.id && *n == name.as_str()) {
                out.push((b, name.as_str()));
            }
        }
        out
    }

    pub fn brands(&self) -> &[Brand] {
        &self.brands
    }

    pub fn get(&self, id: &str) -> Option<&Brand> {
        self.brands.iter().find(|b| b.id == id)
    }

    /// The brand that owns this domain (by registrable domain), if any.
    pub fn owner_of(&self, domain: &str) -> Option<&Brand> {
        let reg = registrable(domain);
        self.brands.iter().find(|b| b.owns_registrable(&reg))
    }
}

/// The first label of a registrable domain (`americanexpress` of `americanexpress.co.jp`).
pub fn label_of(reg: &str) -> String {
    reg.split('.').next().unwrap_or(reg).to_owned()
}

impl Brand {
    /// Whether a registrable domain is one of the brand's own.
    pub fn owns_registrable(&self, reg: &str) -> bool {
        self.regs.iter().any(|d| d == reg)
    }

    pub fn owns(&self, domain: &str) -> bool {
        self.owns_registrable(&registrable(domain))
    }

    /// The domain to name as the real one in evidence.
    pub fn primary_domain(&self) -> &str {
        self.web_domains
            .first()
            .or(self.mail_domains.first())
            .map_or("", String::as_str)
    }

    pub fn display_name(&self) -> &str {
        &self.names[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_knows_card_brands_and_issuers() {
        let r = BrandRegistry::builtin();
        for id in [
            "american_express",
            "visa",
            "mastercard",
            "jcb",
            "smbc_card",
            "rakuten_card",
            "paypal",
            "ebay",
        ] {
            assert!(r.get(id).is_some(), "{id}");
        }
        assert_eq!(
            r.owner_of("email.americanexpress.com").unwrap().id,
            "american_express"
        );
        assert_eq!(
            r.owner_of("www.americanexpress.co.jp").unwrap().id,
            "american_express"
        );
        assert!(r.owner_of("service.cwglk.cn").is_none());
        assert_eq!(
            registrable("www.americeexpre.account-login.qkdbq.com"),
            "qkdbq.com"
        );
    }

    #[test]
    fn the_shared_brand_facts_merge() {
        let mut r = BrandRegistry::builtin();
        r.merge_toml("[american_express]\nnames = [\"AMEX\"]\nmail_domains = [\"aexpfeedback.com\", \"welcome.aexp.com\"]\n")
            .unwrap();
        let amex = r.get("american_express").unwrap();
        assert!(amex.owns("aexpfeedback.com"));
        assert!(r.merge_toml("[x]\nnames = []\n").is_err());
        assert!(r.merge_toml("not toml [").is_err());
    }
}
