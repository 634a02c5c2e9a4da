//! The phishing analyzer: a raw RFC 5322 message in, a verdict (`phishing`, `suspicious`,
//! `clean`) out, with the brand impersonated and the reasons, each with its evidence.
//! Japanese and English; ISO-2022-JP, Shift_JIS, EUC-JP and UTF-8 are decoded by
//! mail-parser. No IO: callers read files and mailboxes.

pub mod analyze;
pub mod brand;
pub mod calibrate;
pub mod links;
pub mod lookalike;
pub mod similar;

pub use analyze::{
    AuthCheck, AuthMethod, Finding, Options, PhishError, Report, Verdict, analyze, analyze_with,
};
pub use brand::{Brand, BrandError, BrandRegistry, registrable};
pub use calibrate::{BUILTIN_CALIBRATION, Calibration, Thresholds};
pub use lookalike::{Permutation, UrlCheck, check_url, permutations};
