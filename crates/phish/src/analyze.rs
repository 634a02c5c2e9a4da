//! The analysis of one message: who it claims to be, who sent it, where its links go, what
//! it asks for; each finding with its evidence and weight, summed into a verdict.

use crate::brand::{Brand, BrandRegistry, registrable};
use crate::links::{Link, host_of, html_links, html_text, is_ip_host, text_links, unusual_port};
use crate::similar::{edit_distance, jaro_winkler, mixed_script, skeleton};
use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;
use std::collections::BTreeMap;

/// Messages larger than this are refused.
pub const MAX_MESSAGE_BYTES: usize = 10 << 20;
const MAX_LINKS: usize = 300;
const MAX_TEXT_CHARS: usize = 200_000;
/// Characters of text the wording checks read: the start of a message says what it wants.
const MAX_SCAN_CHARS: usize = 30_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhishError {
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    #[error("not a mail message (no From, Date, Subject, Message-ID or Received header)")]
    NotAMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Phishing,
    Suspicious,
    Clean,
}

/// One reason, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub weight: u32,
    pub evidence: BTreeMap<&'static str, String>,
}

/// The analysis of one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub verdict: Verdict,
    pub score: u32,
    /// The score as a probability of phishing (the built-in calibration, fitted on the
    /// development corpus).
    pub probability: f64,
    /// The brand the message impersonates (or speaks for, when it is genuine).
    pub brand: Option<String>,
    pub reasons: Vec<Finding>,
}

const CREDENTIAL_EN: &[&str] = &[
    "password",
    "passcode",
    "pin number",
    "your pin",
    "social security",
    "card number",
    "credit card number",
    "cvv",
    "cvv2",
    "security code",
    "expiration date",
    "mother's maiden",
    "verify your account",
    "confirm your account",
    "update your account",
    "verify your identity",
    "confirm your identity",
    "account information",
    "billing information",
    "personal information",
    "log in to your account",
    "login to your account",
    "sign in to your account",
    "update your information",
    "confirm your information",
    "verify your information",
    "re-enter",
    "validate your",
    "prove your identity",
    "account number",
    "routing number",
    "atm card",
    "sign on",
    "update your records",
    "confirm your billing",
    "verify your billing",
];
const CREDENTIAL_JA: &[&str] = &[
    "パスワード",
    "暗証番号",
    "カード番号",
    "セキュリティコード",
    "有効期限",
    "本人確認",
    "アカウント情報",
    "お支払い情報",
    "ご登録情報",
    "ログインして",
    "ログインの上",
    "ご確認ください",
    "認証コード",
    "個人情報",
];
/// Requests for account data and sign-ins in the other languages phishing arrives in:
/// German, French, Spanish, Portuguese, Italian, Chinese, Korean (matched on lower case).
const CREDENTIAL_INTL: &[&str] = &[
    // de
    "passwort",
    "kennwort",
    "kartennummer",
    "bestätigen sie ihr",
    "verifizieren sie ihr",
    "aktualisieren sie ihr",
    "melden sie sich",
    "ihre kontodaten",
    "ihr konto",
    // fr
    "mot de passe",
    "numéro de carte",
    "vérifier votre",
    "vérifiez votre",
    "confirmer votre",
    "confirmez votre",
    "mettre à jour votre",
    "connectez-vous",
    "votre compte",
    // es
    "contraseña",
    "número de tarjeta",
    "verifique su",
    "verificar su",
    "confirme su",
    "confirmar su",
    "actualice su",
    "inicie sesión",
    "iniciar sesión",
    "su cuenta",
    // pt
    "senha",
    "número do cartão",
    "verifique sua",
    "confirme sua",
    "atualize sua",
    "atualizar seus dados",
    "sua conta",
    // it
    "password del",
    "numero della carta",
    "verifica il tuo",
    "verificare il tuo",
    "conferma il tuo",
    "confermare i tuoi",
    "aggiorna i tuoi",
    "accedi al tuo",
    "il tuo conto",
    "il tuo account",
    // zh
    "密码",
    "卡号",
    "验证您的",
    "确认您的",
    "更新您的",
    "登录您的",
    "您的账户",
    "您的帐户",
    // ko
    "비밀번호",
    "카드 번호",
    "계정을 확인",
    "본인 인증",
    "정보를 업데이트",
    "로그인하여",
    "귀하의 계정",
];
/// Pressure in the same languages.
const URGENCY_INTL: &[&str] = &[
    "gesperrt",
    "sperrung",
    "innerhalb von 24 stunden",
    "dringend",
    "suspendu",
    "bloqué",
    "dans les 24 heures",
    "urgent",
    "suspendida",
    "bloqueada",
    "en las próximas 24 horas",
    "urgente",
    "suspensa",
    "bloqueado",
    "nas próximas 24 horas",
    "sospeso",
    "bloccato",
    "entro 24 ore",
    "冻结",
    "暂停",
    "24小时内",
    "紧急",
    "정지",
    "차단",
    "24시간 이내",
    "긴급",
];
/// What a bank or card issuer calls itself, in the languages above and Japanese: a
/// sender's name or subject with one claims to be a financial institution.
const INSTITUTION: &[&str] = &[
    "bank",
    "banking",
    "credit union",
    "savings",
    "card services",
    "cardmember",
    "card member",
    "federal credit",
    "sparkasse",
    "volksbank",
    "banque",
    "crédit",
    "banco",
    "caja ",
    "caixa",
    "banca ",
    "银行",
    "信用卡",
    "은행",
    "카드사",
    "銀行",
    "カード会社",
    "信用金庫",
];
/// Offers of credit that ask for the reader's data (the loan kind of harvesting).
const CREDIT_OFFER: &[&str] = &[
    "your application",
    "eligible for",
    "% rate",
    "mortgage",
    "refinanc",
    "loan",
];
/// What asks the reader to sign in, verify or update, in every language above.
const VERIFY_ASK: &[&str] = &[
    "verify your",
    "confirm your",
    "update your",
    "validate your",
    "sign in to",
    "log in to",
    "login to",
    "bestätigen sie",
    "verifizieren sie",
    "aktualisieren sie",
    "vérifier votre",
    "vérifiez votre",
    "confirmez votre",
    "verifique su",
    "confirme su",
    "actualice su",
    "verifique sua",
    "confirme sua",
    "atualize sua",
    "verifica il tuo",
    "conferma il tuo",
    "aggiorna i tuoi",
    "验证您的",
    "确认您的",
    "更新您的",
    "확인하시기",
    "인증하",
    "本人確認",
    "ご確認ください",
];
const URGENCY_EN: &[&str] = &[
    "suspend",
    "suspension",
    "within 24 hours",
    "within 48 hours",
    "within 72 hours",
    "immediately",
    "unauthorized",
    "unusual activity",
    "suspicious activity",
    "has been limited",
    "account will be",
    "locked",
    "will be closed",
    "terminated",
    "termination",
    "as soon as possible",
    "failure to",
    "urgent",
    "final notice",
    "restricted",
    "verify now",
    "act now",
    "expire",
    "fraudulent",
    "security alert",
    "security measure",
    "temporarily",
    "deactivat",
    "frozen",
];
const GREETINGS: &[&str] = &[
    "dear customer",
    "dear member",
    "dear valued",
    "dear user",
    "dear client",
    "dear account holder",
    "dear sir/madam",
    "dear sir or madam",
    "dear ebay",
    "dear paypal",
    "dear bank",
    "dear card",
    "dear online banking",
    "dear account",
];
/// Words of anchor text that ask for a click to act on an account.
const ACTION_TEXT: &[&str] = &[
    "click here",
    "click",
    "login",
    "log in",
    "log on",
    "sign in",
    "signin",
    "sign on",
    "verify",
    "update",
    "confirm",
    "here",
    "account",
    "online banking",
    "ログイン",
    "こちら",
    "確認",
];
/// Brand names and labels that are ordinary words too: on their own they claim nothing.
const COMMON_WORDS: &[&str] = &[
    "apple",
    "chase",
    "discover",
    "visa",
    "citi",
    "regions",
    "outlook",
    "halifax",
    "amazon",
    "office365",
    "hotmail",
    "aeon",
    "epos",
    "saison",
    "aplus",
    "itunes",
];
const URGENCY_JA: &[&str] = &[
    "至急",
    "24時間以内",
    "48時間以内",
    "停止",
    "制限",
    "凍結",
    "本日中",
    "期限",
    "不正",
    "異常",
    "ロック",
    "利用停止",
    "緊急",
    "重要なお知らせ",
    "ご請求金額確定",
    "速やかに",
];
const DANGEROUS_EXT: &[&str] = &[
    "exe", "scr", "pif", "com", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "hta", "jar",
    "lnk", "iso", "img", "msi", "ps1", "html", "htm", "shtml", "svg", "docm", "xlsm", "pptm",
    "cab", "reg",
];

/// Offers of money, credit or prizes: the lure of the data-harvesting kind of phishing.
const LURE: &[&str] = &[
    "gift card",
    "approved",
    "pre-approved",
    "un-secured",
    "unsecured",
    "credit limit",
    "claim your",
    "free $",
    "$500",
    "$300",
    "$1000",
    "$10,000",
    "winner",
    "you have won",
    "prize",
    "reward",
    "complimentary",
    "sweepstakes",
    "lottery",
    "instant approval",
    "you deserve",
    "card offer",
    "reserved for you",
    "cash bonus",
    "当選",
    "賞金",
    "プレゼント",
    "ギフト券",
];

/// Findings about what the text says, as opposed to where it sends the reader.
const CONTENT_CODES: &[&str] = &[
    "PRIZE_OR_CREDIT_LURE",
    "CREDENTIAL_REQUEST",
    "URGENCY",
    "GENERIC_GREETING",
];

const ARCHIVE_EXT: &[&str] = &["zip", "rar", "7z", "gz", "tgz", "ace", "arj"];

/// Words of running text: letter-only tokens of two or more letters, outside PGP signature
/// blocks (phishers pad image-only messages with them).
fn words(text: &str) -> usize {
    let t = match (
        text.find("-----BEGIN PGP SIGNATURE-----"),
        text.find("-----END PGP SIGNATURE-----"),
    ) {
        (Some(a), Some(b)) if b > a => format!("{} {}", &text[..a], &text[b..]),
        _ => text.to_owned(),
    };
    t.split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
        .count()
}

fn ev(pairs: &[(&'static str, String)]) -> BTreeMap<&'static str, String> {
    pairs.iter().cloned().collect()
}

/// Whether `name` occurs in `text` (lowercased), as a word for ASCII names.
fn mentions(text_lower: &str, name: &str) -> bool {
    let n = name.to_lowercase();
    if n.is_empty() {
        return false;
    }
    if !n.is_ascii() {
        return text_lower.contains(&n);
    }
    let mut from = 0;
    while let Some(p) = text_lower[from..].find(&n) {
        let at = from + p;
        let before = text_lower[..at].chars().next_back();
        let after = text_lower[at + n.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary(before) && boundary(after) {
            return true;
        }
        from = at + n.len();
    }
    false
}

fn is_common(word: &str) -> bool {
    COMMON_WORDS.contains(&word.to_lowercase().as_str())
}

/// The brand whose name the text carries; `distinctive` skips names that are ordinary words.
fn brand_named_in<'a>(reg: &'a BrandRegistry, text: &str, distinctive: bool) -> Option<&'a Brand> {
    reg.names_in(&text.to_lowercase())
        .into_iter()
        .find(|(_, n)| !distinctive || !is_common(n))
        .map(|(b, _)| b)
}

/// The brand a display name speaks for. A name that is an ordinary word (`Apple`) claims the
/// brand only as the whole display name or with a word a brand's own mail would add
/// (`Apple Support`), not inside another name (`Apple Core Newsletter`).
fn brand_of_display<'a>(reg: &'a BrandRegistry, display: &str) -> Option<&'a Brand> {
    const SERVICE_WORDS: &[&str] = &[
        "support", "security", "service", "services", "team", "billing", "account", "accounts",
        "id", "store", "inc", "inc.", "online",
    ];
    let d = display.to_lowercase();
    // A name broken up with dots, spaces or dashes ("Pay.Pal.", "P-a-y-P-a-l") is the
    // brand's name written to get past filters: nothing else is spelled that way.
    let squeezed: String = d.chars().filter(|c| c.is_alphanumeric()).collect();
    if squeezed.len() >= 5 && squeezed != d.replace(' ', "") {
        let broken = reg.brands().iter().find(|b| {
            b.names.iter().any(|n| {
                let name: String = n
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect();
                name.len() >= 5 && name == squeezed && !d.contains(&n.to_lowercase())
            })
        });
        if broken.is_some() {
            return broken;
        }
    }
    reg.brands().iter().find(|b| {
        b.names.iter().any(|n| {
            if !mentions(&d, n) {
                return false;
            }
            if !is_common(n) {
                return true;
            }
            let rest = d.replacen(&n.to_lowercase(), " ", 1);
            rest.split_whitespace().all(|w| SERVICE_WORDS.contains(&w))
        })
    })
}

/// How a host imitates a brand.
struct Imitation<'a> {
    brand: &'a Brand,
    code: &'static str,
    how: String,
}

/// Whether `host` imitates a brand. Labels that are ordinary words (`apple`, `outlook`) count
/// only for the brand the message already claims to be.
fn imitation<'a>(
    reg: &'a BrandRegistry,
    host: &str,
    claimed: Option<&Brand>,
    loose: bool,
) -> Option<Imitation<'a>> {
    if reg.owner_of(host).is_some() {
        return None;
    }
    let regd = registrable(host);
    let suffix = psl::suffix_str(host).unwrap_or("");
    let body = host
        .strip_suffix(suffix)
        .unwrap_or(host)
        .trim_end_matches('.');
    let reg_label = regd.split('.').next().unwrap_or("");
    let labels: Vec<&str> = body.split('.').filter(|l| !l.is_empty()).collect();
    for (i, label) in labels.iter().enumerate() {
        let in_subdomain = i + 1 < labels.len() || *label != reg_label;
        let tokens: Vec<&str> = label.split('-').filter(|t| !t.is_empty()).collect();
        for b in reg.brands() {
            let is_claimed = claimed.is_some_and(|c| c.id == b.id);
            for bl in b.labels.iter().filter(|l| l.len() >= 3) {
                let common = is_common(bl) || bl.len() <= 4;
                if common && !is_claimed {
                    continue;
                }
                if *label == bl.as_str() || tokens.contains(&bl.as_str()) {
                    return Some(if in_subdomain {
                        Imitation {
                            brand: b,
                            code: "BRAND_IN_SUBDOMAIN",
                            how: format!("the brand name {bl} as a subdomain of {regd}"),
                        }
                    } else {
                        Imitation {
                            brand: b,
                            code: "LOOKALIKE_LINK",
                            how: format!(
                                "the brand name {bl} under a domain the brand does not own"
                            ),
                        }
                    });
                }
                // A short brand label inside a longer one ("wamubis") only for the brand the
                // message itself talks about.
                if is_claimed && bl.len() == 4 && label.len() > 4 && label.contains(bl.as_str()) {
                    return Some(Imitation {
                        brand: b,
                        code: if in_subdomain {
                            "BRAND_IN_SUBDOMAIN"
                        } else {
                            "LOOKALIKE_LINK"
                        },
                        how: format!("contains {bl}"),
                    });
                }
                if bl.len() < 5 || label.len() < 4 {
                    continue;
                }
                let (skl, skb) = (skeleton(label), skeleton(bl));
                // Edit distances only between labels of near length (cheap to rule out).
                let near = skl.len().abs_diff(skb.len()) <= 2;
                let dist = if near {
                    edit_distance(&skl, &skb)
                } else {
                    usize::MAX
                };
                let how = if skl == skb {
                    Some("look-alike characters".to_owned())
                } else if label.contains(bl.as_str()) {
                    Some(format!("contains {bl}"))
                } else if dist == 1 {
                    Some(format!("one character from {bl}"))
                } else if bl.len() >= 8 && dist == 2 {
                    Some(format!("two characters from {bl}"))
                } else if (is_claimed || loose)
                    && bl.len() >= 8
                    && label.len() >= 6
                    && label.chars().next() == bl.chars().next()
                {
                    // The loosest likeness (a long shared prefix: washingtonpost and
                    // washingtonmutual) only for the brand the message itself claims.
                    let jw = jaro_winkler(label, bl);
                    (jw >= 0.89).then(|| format!("similar to {bl} (Jaro-Winkler {jw:.2})"))
                } else {
                    None
                };
                if let Some(how) = how {
                    return Some(Imitation {
                        brand: b,
                        code: "LOOKALIKE_LINK",
                        how,
                    });
                }
            }
        }
    }
    None
}

/// The decoded form of an internationalised host, if it is one.
fn unicode_host(host: &str) -> Option<String> {
    if !host.split('.').any(|l| l.starts_with("xn--")) && host.is_ascii() {
        return None;
    }
    let (u, r) = idna::domain_to_unicode(host);
    r.ok().map(|_| u)
}

fn push(
    out: &mut Vec<Finding>,
    code: &'static str,
    weight: u32,
    evidence: BTreeMap<&'static str, String>,
) {
    if let Some(f) = out.iter_mut().find(|f| f.code == code) {
        f.weight = f.weight.max(weight);
        return;
    }
    out.push(Finding {
        code,
        weight,
        evidence,
    });
}

/// The phrases of `words` that occur in `text` (lowercase), each once, in list order. One
/// automaton a list, built on first use.
/// A finding about wording, with the first phrases that made it as evidence.
fn phrases_found(f: &mut Vec<Finding>, code: &'static str, phrases: &[&str], weight: u32) {
    let shown = phrases
        .iter()
        .take(4)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    push(f, code, weight, ev(&[("phrases", shown)]));
}

fn matched<'a>(text: &str, words: &'a [&'a str]) -> Vec<&'a str> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Cache = Mutex<HashMap<usize, Arc<aho_corasick::AhoCorasick>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = words.as_ptr() as usize;
    let ac = {
        let mut c = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match c.get(&key) {
            Some(a) => Arc::clone(a),
            None => match aho_corasick::AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(words)
            {
                Ok(a) => {
                    let a = Arc::new(a);
                    c.insert(key, Arc::clone(&a));
                    a
                }
                Err(_) => return words.iter().copied().filter(|w| text.contains(w)).collect(),
            },
        }
    };
    let mut hit = vec![false; words.len()];
    for m in ac.find_overlapping_iter(text) {
        hit[m.pattern().as_usize()] = true;
    }
    words
        .iter()
        .zip(hit)
        .filter(|(_, h)| *h)
        .map(|(w, _)| *w)
        .collect()
}

/// A form that asks for a secret: a password field or a field named for card data.
fn credential_form(html_lower: &str) -> bool {
    html_lower.contains("type=\"password\"")
        || html_lower.contains("type=password")
        || html_lower.contains("type='password'")
        || [
            "name=\"cc",
            "name=cc",
            "name=\"pin",
            "name=pin",
            "name=\"ssn",
            "name=ssn",
            "name=\"cvv",
            "name=cvv",
            "cardnumber",
            "card_number",
        ]
        .iter()
        .any(|n| html_lower.contains(n))
}

/// The parts of a message the checks read.
struct Parts {
    from_name: String,
    /// The sender's address, lowercase (empty when there is none).
    from_addr: String,
    from_domain: String,
    from_reg: String,
    reply_to: Option<String>,
    subject: String,
    html: String,
    /// Subject and text, lowercased.
    all_text: String,
    links: Vec<Link>,
    attachments: Vec<String>,
    /// Sent to a list (List-Id, List-Unsubscribe) or offering to unsubscribe: a newsletter.
    list_mail: bool,
    /// The values of the mailing-list headers (List-Id, List-Post, List-Unsubscribe,
    /// Mailing-List), lower case.
    list_headers: String,
    /// The text of the HTML part as a reader sees it.
    visible: String,
}

fn parts(msg: &mail_parser::Message<'_>) -> Parts {
    let from = msg.from().and_then(|a| a.first());
    let from_name = from.and_then(|a| a.name()).unwrap_or("").trim().to_owned();
    let from_addr = from
        .and_then(|a| a.address())
        .unwrap_or("")
        .trim()
        .to_lowercase();
    let from_domain = from_addr
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_owned())
        .unwrap_or_default();
    let from_reg = if from_domain.is_empty() {
        String::new()
    } else {
        registrable(&from_domain)
    };
    let mut html = String::new();
    for i in 0..4 {
        match msg.body_html(i) {
            Some(h) if html.len() < MAX_TEXT_CHARS => html.push_str(&h),
            _ => break,
        }
    }
    let mut text = String::new();
    for i in 0..4 {
        match msg.body_text(i) {
            Some(t) if text.len() < MAX_TEXT_CHARS => {
                text.push_str(&t);
                text.push('\n');
            }
            _ => break,
        }
    }
    let text_missing = text.trim().is_empty();
    // mail-parser makes HTML out of plain text when a message has no HTML part: that is
    // not a part the sender wrote.
    let real_html = msg.html_bodies().any(|p| {
        p.content_type()
            .and_then(|c| c.subtype())
            .is_some_and(|s| s.eq_ignore_ascii_case("html"))
    });
    if !real_html {
        html.clear();
    }
    if html.is_empty() {
        // Some malformed structures (an alternative with one child, a bare `text/html;`)
        // leave the body lists empty: read the text parts directly.
        for part in &msg.parts {
            let ct = part.content_type();
            if ct.is_some_and(|c| !c.ctype().eq_ignore_ascii_case("text")) {
                continue;
            }
            let Some(body) = part.text_contents() else {
                continue;
            };
            // Left encoded by the parser in these structures: undo quoted-printable here.
            let decoded;
            let body = if body.contains("=3D") || body.contains("=\n") || body.contains("=\r\n") {
                decoded = quoted_printable(body);
                decoded.as_str()
            } else {
                body
            };
            let head = body
                .get(..body.len().min(4096))
                .unwrap_or(body)
                .to_ascii_lowercase();
            let looks_html =
                head.contains("<html") || head.contains("<a ") || head.contains("<body");
            let is_html = ct
                .and_then(|c| c.subtype())
                .is_some_and(|st| st.eq_ignore_ascii_case("html"))
                || looks_html;
            match () {
                _ if is_html && html.len() < MAX_TEXT_CHARS => html.push_str(body),
                _ if text_missing && text.len() < MAX_TEXT_CHARS => text.push_str(body),
                _ => {}
            }
        }
    }
    let visible = html_text(&html);
    text.push_str(&visible);
    let mut links: Vec<Link> = html_links(&html, MAX_LINKS);
    for l in text_links(&text, MAX_LINKS) {
        if links.len() < MAX_LINKS && !links.iter().any(|x| x.url == l.url) {
            links.push(l);
        }
    }
    let subject = msg.subject().unwrap_or("").to_owned();
    let all_text = format!(
        "{subject}\n{}",
        text.chars().take(MAX_SCAN_CHARS).collect::<String>()
    )
    .to_lowercase();
    let list_mail = msg.header_raw("List-Id").is_some()
        || msg.header_raw("List-Unsubscribe").is_some()
        || all_text.contains("unsubscribe");
    let list_headers = ["List-Id", "List-Post", "List-Unsubscribe", "Mailing-List"]
        .iter()
        .filter_map(|h| msg.header_raw(*h))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    Parts {
        from_name,
        from_addr,
        from_domain,
        from_reg,
        reply_to: msg
            .reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_lowercase),
        subject,
        html,
        all_text,
        links,
        attachments: msg
            .attachments()
            .filter_map(|p| p.attachment_name().map(str::to_owned))
            .collect(),
        list_mail,
        list_headers,
        visible,
    }
}

/// Analyzes one raw message.
pub fn analyze(raw: &[u8], reg: &BrandRegistry) -> Result<Report, PhishError> {
    analyze_with(raw, reg, &Options::default())
}

/// What the analyzer may trust beyond the message itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Authentication-Results headers from these servers (authserv-id, RFC 8601) are
    /// believed: their SPF, DKIM and DMARC results become findings. Others are ignored, as
    /// anyone can write such a header.
    pub trusted_authserv_ids: Vec<String>,
    /// SPF, DKIM and DMARC as the caller verified them against DNS (the analyzer itself does
    /// no IO). Failures become findings; passes and absent records do not.
    pub verified: Vec<AuthCheck>,
    /// The scores at which a message is suspicious and phishing (25 and 50 unless the
    /// configuration says otherwise).
    pub thresholds: crate::calibrate::Thresholds,
    /// Take the loosest likeness of a link to a brand (a long shared prefix) for any brand,
    /// not only the one the message claims: for a URL checked on its own, with no message to
    /// claim anything.
    pub loose_lookalikes: bool,
}

/// Which sender authentication method a result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// RFC 7208, the envelope sender's domain against the sending IP.
    Spf,
    /// RFC 6376, a signature over the message.
    Dkim,
    /// RFC 7489, the From domain's policy over aligned SPF and DKIM.
    Dmarc,
}

/// One verified sender authentication result, in RFC 8601 words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthCheck {
    /// The method.
    pub method: AuthMethod,
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror` or `permerror`.
    pub result: String,
    /// The domain the result is about (envelope sender, signing domain, From domain).
    pub domain: String,
    /// What the verifier said beyond the result (the policy, the failure cause).
    pub detail: String,
}

/// The finding code and weight for a failed check, or `None` when it did not fail.
fn auth_failure(method: AuthMethod, result: &str) -> Option<(&'static str, u32)> {
    let failed = matches!(result, "fail" | "softfail" | "permerror");
    match method {
        AuthMethod::Spf if failed => Some(("SPF_FAIL", 20)),
        AuthMethod::Dkim if failed => Some(("DKIM_FAIL", 15)),
        AuthMethod::Dmarc if failed => Some(("DMARC_FAIL", 35)),
        _ => None,
    }
}

/// SPF, DKIM and DMARC failures reported by a trusted receiving server.
fn auth_results(msg: &mail_parser::Message<'_>, opts: &Options, f: &mut Vec<Finding>) {
    for c in &opts.verified {
        if let Some((code, w)) = auth_failure(c.method, &c.result) {
            push(
                f,
                code,
                w,
                ev(&[
                    ("verified_by", "cardguard".to_owned()),
                    ("result", c.result.clone()),
                    ("domain", c.domain.clone()),
                    ("detail", c.detail.chars().take(200).collect()),
                ]),
            );
        }
    }
    if opts.trusted_authserv_ids.is_empty() {
        return;
    }
    for h in msg
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("Authentication-Results"))
    {
        let Some(raw) = msg
            .raw_message()
            .get(h.offset_start() as usize..h.offset_end() as usize)
        else {
            continue;
        };
        let value = String::from_utf8_lossy(raw).replace(['\r', '\n'], " ");
        let mut parts = value.split(';');
        let authserv = parts
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !opts
            .trusted_authserv_ids
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&authserv))
        {
            continue;
        }
        for part in parts {
            let part = part.trim().to_ascii_lowercase();
            let Some((method, rest)) = part.split_once('=') else {
                continue;
            };
            let result = rest.split_whitespace().next().unwrap_or("");
            let m = match method.trim() {
                "spf" => AuthMethod::Spf,
                "dkim" => AuthMethod::Dkim,
                "dmarc" => AuthMethod::Dmarc,
                _ => continue,
            };
            // The caller's own verification of the same method wins over a header's.
            if opts.verified.iter().any(|c| c.method == m) {
                continue;
            }
            let Some((code, w)) = auth_failure(m, result) else {
                continue;
            };
            push(
                f,
                code,
                w,
                ev(&[
                    ("authserv_id", authserv.clone()),
                    ("result", part.chars().take(200).collect()),
                ]),
            );
        }
    }
}

/// Analyzes one raw message with options.
pub fn analyze_with(raw: &[u8], reg: &BrandRegistry, opts: &Options) -> Result<Report, PhishError> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(PhishError::TooLarge(raw.len()));
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(PhishError::NotAMessage)?;
    // Text without a message's headers (a Markdown file, a log, a web page) is not a
    // message: it gets no verdict rather than one its links and wording would earn.
    let is_message = msg.headers().iter().any(|h| {
        use mail_parser::HeaderName as H;
        matches!(
            h.name,
            H::From | H::Sender | H::Date | H::Received | H::MessageId | H::ReturnPath | H::Subject
        )
    });
    if !is_message {
        return Err(PhishError::NotAMessage);
    }
    let p = parts(&msg);
    let mut f: Vec<Finding> = Vec::new();
    auth_results(&msg, opts, &mut f);

    // Who the message claims to be: its display name, its subject, its sender's domain, or
    // the brand its text names most.
    let by_display = brand_of_display(reg, &p.from_name);
    let by_subject = brand_named_in(reg, &p.subject, true);
    let sender_owner = reg.owner_of(&p.from_domain);
    let mut counts: Vec<(&Brand, usize)> = Vec::new();
    for (b, n) in reg.names_in(&p.all_text) {
        if is_common(n) {
            continue;
        }
        match counts.iter_mut().find(|(x, _)| x.id == b.id) {
            Some(c) => c.1 += 1,
            None => counts.push((b, 1)),
        }
    }
    let body_brand = counts.iter().max_by_key(|(_, n)| *n).map(|(b, _)| *b);
    // Body mentions name a brand but claim nothing on their own: newsletters talk about
    // brands all the time.
    let stated = by_display.or(by_subject).or(sender_owner);
    let sender_imitation = if p.from_domain.is_empty() {
        None
    } else {
        // The brand the text names unlocks its short labels for the sender's domain only.
        imitation(reg, &p.from_domain, stated.or(body_brand), false)
    };

    // The links.
    let mut link_imitations = Vec::new();
    let mut homograph_brand: Option<&Brand> = None;
    let mut seen_hosts: Vec<String> = Vec::new();
    // Links to an address or an unusual port: weighed once it is known what the message
    // claims to be.
    let mut addresses = Vec::new();
    for l in &p.links {
        let Some(host) = host_of(&l.url) else {
            continue;
        };
        if let Some(port) = unusual_port(&l.url) {
            addresses.push((
                "UNUSUAL_PORT",
                ev(&[
                    ("url", l.url.chars().take(200).collect()),
                    ("port", port.to_string()),
                ]),
            ));
        }
        if seen_hosts.contains(&host) {
            continue;
        }
        seen_hosts.push(host.clone());
        if is_ip_host(&host) {
            addresses.push((
                "IP_URL",
                ev(&[
                    ("url", l.url.chars().take(200).collect()),
                    ("host", host.clone()),
                ]),
            ));
            continue;
        }
        if let Some(u) = unicode_host(&host) {
            let sk = skeleton(&u);
            let target = reg.brands().iter().find(|b| {
                b.labels
                    .iter()
                    .any(|bl| bl.len() >= 4 && sk.split(['.', '-']).any(|t| t == skeleton(bl)))
            });
            if target.is_some() || mixed_script(&u) {
                let mut e = vec![("link_domain", host.clone()), ("unicode", u.clone())];
                if let Some(b) = target {
                    e.push(("imitates", b.primary_domain().to_owned()));
                    homograph_brand = homograph_brand.or(Some(b));
                }
                push(&mut f, "HOMOGRAPH_DOMAIN", 45, ev(&e));
            }
        }
        if let Some(im) = imitation(reg, &host, stated, opts.loose_lookalikes) {
            link_imitations.push((host.clone(), im));
        }
    }
    // An identity the message claims (its display name, subject, sender or links), as
    // opposed to a brand it merely mentions: an address or a port in a link is how a phisher
    // hides a site that does not back that claim; in a technical discussion that claims
    // nothing it is ordinary.
    let claims_identity = by_display
        .or(by_subject)
        .or(sender_imitation.as_ref().map(|i| i.brand))
        .or(link_imitations.first().map(|(_, i)| i.brand))
        .or(homograph_brand)
        .is_some()
        || !matched(&p.all_text, CREDENTIAL_EN).is_empty()
        || !matched(&p.all_text, CREDENTIAL_JA).is_empty()
        || !matched(&p.all_text, CREDENTIAL_INTL).is_empty();
    for (code, e) in addresses {
        let w = match (code, claims_identity) {
            ("IP_URL", true) => 35,
            ("IP_URL", false) => 15,
            (_, true) => 20,
            _ => 10,
        };
        push(&mut f, code, w, e);
    }
    let claimed: Option<&Brand> = by_display
        .or(by_subject)
        .or(sender_imitation.as_ref().map(|i| i.brand))
        .or(link_imitations.first().map(|(_, i)| i.brand))
        .or(homograph_brand)
        .or(sender_owner)
        .or(body_brand);

    // The sender.
    if let Some(b) = by_display
        .or(by_subject)
        .or(sender_imitation.as_ref().map(|i| i.brand))
        && !p.from_reg.is_empty()
        && !b.owns_registrable(&p.from_reg)
    {
        let mut e = vec![
            ("brand", b.display_name().to_owned()),
            ("sender_domain", p.from_domain.clone()),
        ];
        if let Some(im) = &sender_imitation {
            e.push(("how", im.how.clone()));
        }
        e.push((
            "official",
            b.mail_domains.first().cloned().unwrap_or_default(),
        ));
        let w = if by_display.is_some() || sender_imitation.is_some() {
            35
        } else {
            15
        };
        push(&mut f, "SENDER_NOT_OFFICIAL_DOMAIN", w, ev(&e));
    }
    if let Some(d) = display_domain(&p.from_name)
        && !p.from_reg.is_empty()
        && registrable(&d) != p.from_reg
    {
        push(
            &mut f,
            "DISPLAY_NAME_SPOOF",
            30,
            ev(&[
                ("display_name", p.from_name.clone()),
                ("sender_domain", p.from_domain.clone()),
            ]),
        );
    }
    if let (Some(rt), false) = (&p.reply_to, p.from_reg.is_empty())
        && let Some((_, d)) = rt.rsplit_once('@')
    {
        let same_owner = reg
            .owner_of(d)
            .zip(sender_owner)
            .is_some_and(|(a, b)| a.id == b.id);
        // A mailing list answers to itself: its headers name the Reply-To's domain.
        let the_list = p.list_headers.contains(&registrable(d));
        if registrable(d) != p.from_reg && !same_owner && !the_list {
            push(
                &mut f,
                "REPLY_TO_MISMATCH",
                10,
                ev(&[
                    ("reply_to_domain", d.to_owned()),
                    ("sender_domain", p.from_domain.clone()),
                ]),
            );
        }
    }
    for (host, im) in &link_imitations {
        let w = if im.code == "BRAND_IN_SUBDOMAIN" {
            35
        } else {
            40
        };
        push(
            &mut f,
            im.code,
            w,
            ev(&[
                ("link_domain", host.clone()),
                ("imitates", im.brand.primary_domain().to_owned()),
                ("how", im.how.clone()),
            ]),
        );
    }
    for l in &p.links {
        let (Some(shown), Some(target)) = (l.text.as_deref().and_then(shown_host), host_of(&l.url))
        else {
            continue;
        };
        let same_owner = reg
            .owner_of(&target)
            .zip(reg.owner_of(&shown))
            .is_some_and(|(a, b)| a.id == b.id);
        // A redirect through the sender's own domain is a click counter, not a disguise:
        // a phisher cannot send through the domain it spoofs.
        let via_sender = !p.from_reg.is_empty() && registrable(&target) == p.from_reg;
        if registrable(&shown) != registrable(&target) && !same_owner && !via_sender {
            // Strong when the reader is shown a brand's site, the sender's own site, a
            // sign-in or banking site, or when the real target is an address.
            let strong = reg.owner_of(&shown).is_some()
                || is_ip_host(&target)
                || (!p.from_reg.is_empty() && registrable(&shown) == p.from_reg)
                || ["bank", "login", "signin", "secure", "account", "online"]
                    .iter()
                    .any(|w| shown.contains(w));
            push(
                &mut f,
                "LINK_TEXT_MISMATCH",
                if strong { 35 } else { 10 },
                ev(&[("shown", shown), ("target", target)]),
            );
        }
    }
    // A message that speaks for a brand and sends the reader elsewhere to act on an account.
    let subject_claim = if p.list_mail { None } else { by_subject };
    if let Some(b) = by_display.or(sender_owner).or(subject_claim) {
        let away = p.links.iter().find(|l| {
            let Some(host) = host_of(&l.url) else {
                return false;
            };
            let text = l.text.as_deref().unwrap_or("").to_lowercase();
            !l.form
                && !b.owns(&host)
                && reg.owner_of(&host).is_none()
                && (ACTION_TEXT.iter().any(|a| text.contains(a))
                    || b.names.iter().any(|n| mentions(&text, n)))
        });
        if let Some(l) = away {
            push(
                &mut f,
                "LINK_NOT_OFFICIAL",
                25,
                ev(&[
                    ("brand", b.display_name().to_owned()),
                    ("link_domain", host_of(&l.url).unwrap_or_default()),
                    ("text", l.text.clone().unwrap_or_default()),
                ]),
            );
        }
    }
    let cred: Vec<&str> = matched(&p.all_text, CREDENTIAL_EN)
        .into_iter()
        .chain(matched(&p.all_text, CREDENTIAL_JA))
        .chain(matched(&p.all_text, CREDENTIAL_INTL))
        .collect();
    let urg: Vec<&str> = matched(&p.all_text, URGENCY_EN)
        .into_iter()
        .chain(matched(&p.all_text, URGENCY_JA))
        .chain(matched(&p.all_text, URGENCY_INTL))
        .collect();
    // A financial institution the registry does not know (or an offer of credit) that asks
    // the reader to sign in, verify or update at a site that is not the sender's: what a
    // phish of an unregistered bank needs. A registered brand's own site backs nothing here
    // either way, so those links are passed over.
    if claimed.is_none() && !p.list_mail && !p.from_reg.is_empty() {
        let identity = format!("{} {}", p.from_name, p.subject).to_lowercase();
        let institution = matched(&identity, INSTITUTION);
        let offer = matched(&p.all_text, CREDIT_OFFER);
        let asks = matched(&p.all_text, VERIFY_ASK);
        if (!institution.is_empty() || offer.len() >= 2) && !asks.is_empty() {
            let away = p.links.iter().find_map(|l| {
                let host = host_of(&l.url)?;
                (!l.form && registrable(&host) != p.from_reg && reg.owner_of(&host).is_none())
                    .then_some(host)
            });
            if let Some(host) = away {
                let claim = institution
                    .first()
                    .map(|w| format!("a financial institution ({})", w.trim()))
                    .unwrap_or_else(|| "an offer of credit".to_owned());
                push(
                    &mut f,
                    "UNREGISTERED_INSTITUTION",
                    30,
                    ev(&[
                        ("claims", claim),
                        ("asks", asks[0].to_owned()),
                        ("sender_domain", p.from_domain.clone()),
                        ("link_domain", host),
                    ]),
                );
            }
        }
    }
    let greet = matched(&p.all_text, GREETINGS);
    // A sender that asks for account data in a hurry and sends the reader to another
    // organisation's site to give it.
    if !cred.is_empty()
        && (!urg.is_empty() || !greet.is_empty())
        && !p.from_reg.is_empty()
        && !p.list_mail
    {
        let away = p.links.iter().find(|l| {
            let Some(host) = host_of(&l.url) else {
                return false;
            };
            let text = l.text.as_deref().unwrap_or("").to_lowercase();
            !l.form
                && registrable(&host) != p.from_reg
                && ACTION_TEXT.iter().any(|a| text.contains(a))
        });
        if let Some(l) = away {
            push(
                &mut f,
                "LINK_NOT_OFFICIAL",
                25,
                ev(&[
                    ("sender_domain", p.from_domain.clone()),
                    ("link_domain", host_of(&l.url).unwrap_or_default()),
                    ("text", l.text.clone().unwrap_or_default()),
                ]),
            );
        }
    }
    // Nothing to read but a picture that is a link: the text is in the image.
    let visible = &p.visible;
    if !p.html.is_empty() && words(visible) < 12 && linked_image(&p.html) {
        push(
            &mut f,
            "IMAGE_ONLY_LINK",
            30,
            ev(&[("visible_text", visible.chars().take(40).collect())]),
        );
    }
    let html_lower = p.html.to_lowercase();
    if let Some(form) = p.links.iter().find(|l| l.form) {
        let speaks_for = by_display.or(sender_owner);
        let target = host_of(&form.url).unwrap_or_default();
        if credential_form(&html_lower) {
            push(
                &mut f,
                "HTML_FORM",
                40,
                ev(&[("action", form.url.chars().take(200).collect())]),
            );
        } else if let Some(b) = speaks_for.filter(|b| !b.owns(&target)) {
            // A brand's mail with a form (a button) that posts to someone else.
            push(
                &mut f,
                "HTML_FORM",
                30,
                ev(&[
                    ("action", form.url.chars().take(200).collect()),
                    ("brand", b.display_name().to_owned()),
                ]),
            );
        }
    }
    // A link that passes through a redirector to another address (`…/*http://…`,
    // `?url=http…`): the address a reader checks is not where they land.
    if let Some((l, inner)) = p
        .links
        .iter()
        .find_map(|l| redirect_target(&l.url).map(|t| (l, t)))
    {
        let inner_host = host_of(&inner).unwrap_or_default();
        let outer = host_of(&l.url).unwrap_or_default();
        // Landing on a registered brand's own site disguises nothing.
        if !inner_host.is_empty()
            && registrable(&inner_host) != registrable(&outer)
            && reg.owner_of(&inner_host).is_none()
        {
            // Newsletters count clicks through redirectors too: it weighs little unless the
            // mail speaks for a brand or lands on an address.
            let w = if is_ip_host(&inner_host) {
                35
            } else if by_display.or(sender_owner).is_some() {
                20
            } else {
                10
            };
            push(
                &mut f,
                "REDIRECT_URL",
                w,
                ev(&[
                    ("url", l.url.chars().take(200).collect()),
                    ("lands_on", inner_host),
                ]),
            );
        }
    }
    let lure = matched(&p.all_text, LURE);
    if lure.len() >= 2 {
        // A brand's name (even one that is an ordinary word, like Visa) in the subject or the
        // sender's name of an offer sent from elsewhere: the brand lends the lure its
        // credibility.
        if let Some(b) = brand_named_in(reg, &p.subject, false)
            .or_else(|| brand_named_in(reg, &p.from_name, false))
            && !p.from_reg.is_empty()
            && !b.owns_registrable(&p.from_reg)
        {
            push(
                &mut f,
                "SENDER_NOT_OFFICIAL_DOMAIN",
                15,
                ev(&[
                    ("brand", b.display_name().to_owned()),
                    ("sender_domain", p.from_domain.clone()),
                    ("how", "the brand's name in an offer".to_owned()),
                ]),
            );
        }
        phrases_found(
            &mut f,
            "PRIZE_OR_CREDIT_LURE",
            &lure,
            if lure.len() >= 3 { 30 } else { 20 },
        );
    }
    // What it asks for, and how.
    if !cred.is_empty() {
        phrases_found(
            &mut f,
            "CREDENTIAL_REQUEST",
            &cred,
            if cred.len() >= 2 { 15 } else { 8 },
        );
    }
    if !urg.is_empty() {
        phrases_found(&mut f, "URGENCY", &urg, if urg.len() >= 2 { 12 } else { 6 });
    }
    if let Some(g) = greet.first() {
        push(
            &mut f,
            "GENERIC_GREETING",
            10,
            ev(&[("greeting", (*g).to_owned())]),
        );
    }
    for name in &p.attachments {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if DANGEROUS_EXT.contains(&ext.as_str()) {
            push(
                &mut f,
                "DANGEROUS_ATTACHMENT",
                40,
                ev(&[("filename", name.clone())]),
            );
        } else if ARCHIVE_EXT.contains(&ext.as_str()) {
            // An archive hides what it holds; it weighs more in a message that presses.
            let pressing = !urg.is_empty() || !cred.is_empty() || !greet.is_empty();
            push(
                &mut f,
                "DANGEROUS_ATTACHMENT",
                if pressing { 30 } else { 15 },
                ev(&[("filename", name.clone())]),
            );
        }
    }
    // Wording alone does not make a phish: unless something about the sender, a link, a
    // form or an attachment is wrong too, what the text says weighs at most 24: below suspicion.
    let technical = f.iter().any(|x| !CONTENT_CODES.contains(&x.code));
    if !technical {
        let mut left = 24u32;
        for x in f.iter_mut().filter(|x| CONTENT_CODES.contains(&x.code)) {
            x.weight = x.weight.min(left);
            left -= x.weight;
        }
        f.retain(|x| x.weight > 0);
    }
    f.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.code.cmp(b.code)));
    let score: u32 = f.iter().map(|x| x.weight).sum::<u32>().min(100);
    let verdict = opts.thresholds.verdict(score);
    let probability = crate::calibrate::BUILTIN_CALIBRATION.probability(score);
    let from = (!p.from_addr.is_empty()).then(|| p.from_addr.clone());
    Ok(Report {
        message_id: msg.message_id().map(str::to_owned),
        subject: msg.subject().map(str::to_owned),
        from,
        verdict,
        score,
        probability,
        brand: claimed.map(|b| b.display_name().to_owned()),
        reasons: f,
    })
}

/// The address a redirector URL forwards to, if the URL carries one.
fn redirect_target(url: &str) -> Option<String> {
    let lu = url.to_ascii_lowercase();
    let start = lu.find("://").map(|i| i + 3)?;
    let rest = &lu[start..];
    let path_at = rest.find(['/', '?'])?;
    let tail = &rest[path_at..];
    let p = tail
        .find("http://")
        .or_else(|| tail.find("https://"))
        .or_else(|| tail.find("http%3a%2f%2f"))?;
    let inner = crate::links::percent_decode(&tail[p..]);
    Some(inner)
}

/// Quoted-printable decoding (soft line breaks, `=XX`); bytes that are not UTF-8 are read as
/// Latin-1.
fn quoted_printable(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| char::from(c).to_digit(16);
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => e.into_bytes().into_iter().map(char::from).collect(),
    }
}

/// Whether the HTML has an image inside a link.
fn linked_image(html: &str) -> bool {
    let h = html.to_lowercase();
    let mut from = 0;
    while let Some(p) = h[from..].find("<a ") {
        let start = from + p;
        let end = h[start..].find("</a").map_or(h.len(), |e| start + e);
        if h[start..end].contains("<img") {
            return true;
        }
        from = end.max(start + 3);
        if from >= h.len() {
            break;
        }
    }
    false
}

/// A domain shown in a display name (`"service@paypal.com" <x@evil.net>`).
fn display_domain(name: &str) -> Option<String> {
    let n = name.to_lowercase();
    if let Some((_, d)) = n.rsplit_once('@') {
        let d: String = d
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        return d.contains('.').then_some(d);
    }
    None
}

/// The host a link's text shows, when the text looks like a URL or a domain.
fn shown_host(text: &str) -> Option<String> {
    let t = text.trim();
    if t.contains(' ') || t.len() < 4 {
        return None;
    }
    if let Some(h) = host_of(t) {
        return Some(h);
    }
    let candidate = t.split('/').next().unwrap_or("").to_ascii_lowercase();
    let looks = candidate.contains('.')
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && psl::suffix_str(&candidate)
            .is_some_and(|s| s != candidate && candidate.len() > s.len() + 1);
    looks.then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(raw: &str) -> Report {
        analyze(raw.as_bytes(), &BrandRegistry::builtin()).unwrap()
    }

    fn codes(r: &Report) -> Vec<&'static str> {
        r.reasons.iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_classic_ebay_phish() {
        let r = report(
            "From: eBay <aw-confirm@ebay-secure-login.com>\r\nSubject: Your account will be suspended\r\n\
             Content-Type: text/html\r\n\r\n<p>Please verify your account within 24 hours.\
             <a href=\"http://61.12.3.4/ebay/\">https://signin.ebay.com/ws/eBayISAPI.dll</a></p>",
        );
        assert_eq!(r.verdict, Verdict::Phishing, "{r:?}");
        assert_eq!(r.brand.as_deref(), Some("eBay"));
        let c = codes(&r);
        for code in [
            "SENDER_NOT_OFFICIAL_DOMAIN",
            "IP_URL",
            "LINK_TEXT_MISMATCH",
            "URGENCY",
            "CREDENTIAL_REQUEST",
        ] {
            assert!(c.contains(&code), "{code} in {c:?}");
        }
    }

    #[test]
    fn trusted_authentication_results_only() {
        let raw = "Authentication-Results: mx.issuer.example; spf=fail smtp.mailfrom=paypal.com;\r\n \
                   dkim=none; dmarc=fail (p=REJECT) header.from=paypal.com\r\n\
                   Authentication-Results: forged.example; spf=pass\r\n\
                   From: PayPal <service@paypal.com>\r\nSubject: Receipt\r\n\r\nThanks.";
        let reg = BrandRegistry::builtin();
        let plain = analyze(raw.as_bytes(), &reg).unwrap();
        assert!(plain.reasons.is_empty(), "{plain:?}");
        let opts = Options {
            trusted_authserv_ids: vec!["mx.issuer.example".into()],
            ..Options::default()
        };
        let r = analyze_with(raw.as_bytes(), &reg, &opts).unwrap();
        let c = codes(&r);
        assert!(
            c.contains(&"SPF_FAIL") && c.contains(&"DMARC_FAIL") && !c.contains(&"DKIM_FAIL"),
            "{c:?}"
        );
        assert_eq!(r.verdict, Verdict::Phishing);
        let other = Options {
            trusted_authserv_ids: vec!["forged.example".into()],
            ..Options::default()
        };
        assert!(
            analyze_with(raw.as_bytes(), &reg, &other)
                .unwrap()
                .reasons
                .is_empty()
        );
    }

    #[test]
    fn a_genuine_notice_is_clean() {
        let r = report(
            "From: PayPal <service@paypal.com>\r\nSubject: Receipt for your payment\r\n\r\n\
             You sent a payment of $10.00. See https://www.paypal.com/activity",
        );
        assert_eq!(r.verdict, Verdict::Clean, "{r:?}");
        assert!(r.reasons.is_empty(), "{r:?}");
    }

    #[test]
    fn lookalikes_homographs_and_attachments() {
        let r = report(
            "From: Support <help@mail.example.net>\r\nSubject: invoice\r\nContent-Type: text/html\r\n\r\n\
             <a href=\"http://www.paypal.com.secure-check.net/x\">x</a> <a href=\"http://xn--pypal-4ve.com/\">y</a>",
        );
        let c = codes(&r);
        assert!(c.contains(&"BRAND_IN_SUBDOMAIN"), "{c:?}");
        assert!(c.contains(&"HOMOGRAPH_DOMAIN"), "{c:?}");
        let big = vec![b'a'; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            analyze(&big, &BrandRegistry::builtin()),
            Err(PhishError::TooLarge(big.len()))
        );
    }
}
