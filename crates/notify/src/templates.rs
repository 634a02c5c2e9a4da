//! The texts of notifications: one template per kind and language for email
//! (`KIND.LANG.txt`, the first line the subject, then an empty line, then the body) and one
//! for SMS (`KIND.LANG.sms.txt`, the text alone), built in and replaceable by
//! files in `notify.templates_dir`, so that an issuer edits them without a rebuild. Every
//! template is rendered once with sample values when loaded: a template that names a value
//! that does not exist, or has no one-line subject, is refused at start.

use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::path::Path;

/// Kinds of notification.
pub const KINDS: [&str; 8] = [
    "fraud-alert",
    "usage-notice",
    "card-blocked",
    "one-time-code",
    "authentication-failed",
    "card-stopped",
    "card-reissued",
    "coverage-decision",
];
/// Languages a card may choose.
pub const LANGUAGES: [&str; 2] = ["ja", "en"];

const BUILT_IN: [(&str, &str); 32] = [
    (
        "coverage-decision.en.txt",
        include_str!("../templates/coverage-decision.en.txt"),
    ),
    (
        "coverage-decision.en.sms.txt",
        include_str!("../templates/coverage-decision.en.sms.txt"),
    ),
    (
        "coverage-decision.ja.txt",
        include_str!("../templates/coverage-decision.ja.txt"),
    ),
    (
        "coverage-decision.ja.sms.txt",
        include_str!("../templates/coverage-decision.ja.sms.txt"),
    ),
    (
        "card-reissued.en.txt",
        include_str!("../templates/card-reissued.en.txt"),
    ),
    (
        "card-reissued.en.sms.txt",
        include_str!("../templates/card-reissued.en.sms.txt"),
    ),
    (
        "card-reissued.ja.txt",
        include_str!("../templates/card-reissued.ja.txt"),
    ),
    (
        "card-reissued.ja.sms.txt",
        include_str!("../templates/card-reissued.ja.sms.txt"),
    ),
    (
        "card-stopped.en.txt",
        include_str!("../templates/card-stopped.en.txt"),
    ),
    (
        "card-stopped.en.sms.txt",
        include_str!("../templates/card-stopped.en.sms.txt"),
    ),
    (
        "card-stopped.ja.txt",
        include_str!("../templates/card-stopped.ja.txt"),
    ),
    (
        "card-stopped.ja.sms.txt",
        include_str!("../templates/card-stopped.ja.sms.txt"),
    ),
    (
        "one-time-code.en.txt",
        include_str!("../templates/one-time-code.en.txt"),
    ),
    (
        "one-time-code.en.sms.txt",
        include_str!("../templates/one-time-code.en.sms.txt"),
    ),
    (
        "one-time-code.ja.txt",
        include_str!("../templates/one-time-code.ja.txt"),
    ),
    (
        "one-time-code.ja.sms.txt",
        include_str!("../templates/one-time-code.ja.sms.txt"),
    ),
    (
        "authentication-failed.en.txt",
        include_str!("../templates/authentication-failed.en.txt"),
    ),
    (
        "authentication-failed.en.sms.txt",
        include_str!("../templates/authentication-failed.en.sms.txt"),
    ),
    (
        "authentication-failed.ja.txt",
        include_str!("../templates/authentication-failed.ja.txt"),
    ),
    (
        "authentication-failed.ja.sms.txt",
        include_str!("../templates/authentication-failed.ja.sms.txt"),
    ),
    (
        "fraud-alert.en.txt",
        include_str!("../templates/fraud-alert.en.txt"),
    ),
    (
        "fraud-alert.en.sms.txt",
        include_str!("../templates/fraud-alert.en.sms.txt"),
    ),
    (
        "fraud-alert.ja.txt",
        include_str!("../templates/fraud-alert.ja.txt"),
    ),
    (
        "fraud-alert.ja.sms.txt",
        include_str!("../templates/fraud-alert.ja.sms.txt"),
    ),
    (
        "usage-notice.en.txt",
        include_str!("../templates/usage-notice.en.txt"),
    ),
    (
        "usage-notice.en.sms.txt",
        include_str!("../templates/usage-notice.en.sms.txt"),
    ),
    (
        "usage-notice.ja.txt",
        include_str!("../templates/usage-notice.ja.txt"),
    ),
    (
        "usage-notice.ja.sms.txt",
        include_str!("../templates/usage-notice.ja.sms.txt"),
    ),
    (
        "card-blocked.en.txt",
        include_str!("../templates/card-blocked.en.txt"),
    ),
    (
        "card-blocked.en.sms.txt",
        include_str!("../templates/card-blocked.en.sms.txt"),
    ),
    (
        "card-blocked.ja.txt",
        include_str!("../templates/card-blocked.ja.txt"),
    ),
    (
        "card-blocked.ja.sms.txt",
        include_str!("../templates/card-blocked.ja.sms.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {why}")]
    Invalid { name: String, why: String },
    #[error("template {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

pub struct Templates {
    env: Environment<'static>,
}

/// Values every template may use, as a sample (what the check at load renders).
pub fn sample(held: bool) -> Value {
    context! {
        issuer => "cardguard",
        last4 => "2349",
        merchant => "BIC CAMERA (Tokyo)",
        amount => "¥12,800",
        time => "2026年12月1日 10:15 (JST)",
        held => held,
        expires => "2026年12月1日 10:45 (JST)",
        yes_url => "https://cards.example/answer?t=x&answer=yes",
        no_url => "https://cards.example/answer?t=x&answer=no",
        code => "0042",
        otp => "123456",
        valid_minutes => 10,
        why => "too many wrong codes",
        new_last4 => "8812",
        expected => "2026年12月8日 10:15 (JST)",
        cnp => held,
        scheme => if held { "fraud_compensation" } else { "shopping_protection" },
        reference => 7,
        covered => held,
        credited => "¥12,800",
        billed => "¥3,000",
        reasons => vec!["within_window", "deductible"],
    }
}

impl Templates {
    /// The built-in templates, each replaced by `dir/KIND.LANG.txt` when that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Plain text: nothing is escaped.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for (name, text) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => {
                    std::fs::read_to_string(&p).map_err(|source| TemplateError::Read {
                        path: p.display().to_string(),
                        source,
                    })?
                }
                _ => text.to_owned(),
            };
            env.add_template_owned(name, source)
                .map_err(|e| TemplateError::Invalid {
                    name: name.into(),
                    why: e.to_string(),
                })?;
        }
        let t = Templates { env };
        for kind in KINDS {
            for lang in LANGUAGES {
                for held in [true, false] {
                    t.render(kind, lang, sample(held))?;
                    t.render_sms(kind, lang, sample(held))?;
                }
            }
        }
        Ok(t)
    }

    /// The SMS text of `kind` in `language`: one line, at most 400 characters.
    pub fn render_sms(
        &self,
        kind: &str,
        language: &str,
        ctx: Value,
    ) -> Result<String, TemplateError> {
        let lang = if LANGUAGES.contains(&language) {
            language
        } else {
            "en"
        };
        let name = format!("{kind}.{lang}.sms.txt");
        let bad = |why: String| TemplateError::Invalid {
            name: name.clone(),
            why,
        };
        let text = self
            .env
            .get_template(&name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| bad(e.to_string()))?;
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || text.chars().count() > 400 {
            return Err(bad("an SMS must be 1 to 400 characters".into()));
        }
        Ok(text)
    }

    /// The subject and body of `kind` in `language` (English for a language without
    /// templates).
    pub fn render(
        &self,
        kind: &str,
        language: &str,
        ctx: Value,
    ) -> Result<Rendered, TemplateError> {
        let lang = if LANGUAGES.contains(&language) {
            language
        } else {
            "en"
        };
        let name = format!("{kind}.{lang}.txt");
        let bad = |why: String| TemplateError::Invalid {
            name: name.clone(),
            why,
        };
        let text = self
            .env
            .get_template(&name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| bad(e.to_string()))?;
        let (subject, body) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("must start with a subject line, then an empty line".into()))?;
        let subject = subject.trim();
        if subject.is_empty() || subject.contains('\n') {
            return Err(bad("the subject must be one line".into()));
        }
        Ok(Rendered {
            subject: subject.to_owned(),
            body: format!("{}\n", body.trim()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_texts_render_and_a_replacement_is_checked_at_load() {
        let t = Templates::load(None).unwrap();
        let r = t.render("fraud-alert", "ja", sample(true)).unwrap();
        assert!(
            r.subject.contains("2349") && r.subject.contains("BIC CAMERA"),
            "{}",
            r.subject
        );
        assert!(r.body.contains("¥12,800") && r.body.contains("answer=yes"));
        assert!(r.body.contains("までにご回答がない場合"));
        let r = t.render("fraud-alert", "en", sample(false)).unwrap();
        assert!(r.body.contains("We declined") && !r.body.contains("by 2026"));
        let r = t.render("usage-notice", "fr", sample(false)).unwrap();
        assert!(
            r.subject.starts_with("cardguard: your card ending 2349"),
            "English by default"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("usage-notice.en.txt"),
            "Card {{ last4 }} used\n\n{{ amount }} at {{ merchant }}.\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t.render("usage-notice", "en", sample(false)).unwrap();
        assert_eq!(r.subject, "Card 2349 used");
        assert_eq!(r.body, "¥12,800 at BIC CAMERA (Tokyo).\n");
        // A value that does not exist, or no subject line: refused when loaded.
        std::fs::write(dir.path().join("usage-notice.en.txt"), "{{ pan }}\n\nx\n").unwrap();
        let e = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(e.contains("usage-notice.en.txt"), "{e}");
        std::fs::write(dir.path().join("usage-notice.en.txt"), "no subject").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
