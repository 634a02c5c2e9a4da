//! Signed links to the cardholder's pages ("was this you?"): the token names the
//! authorization and when the link expires, and carries a MAC under the key ring's link key
//! over both, so that only this server makes one and a changed link does not verify. The
//! answer itself is not in the token: both links of an alert share it, and the page asks
//! again before anything changes.

use crate::keys::KeyRing;
use cardguard_core::Timestamp;
use subtle::ConstantTimeEq;

/// Why a link does not open its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not one of ours or was changed")]
    Invalid,
    #[error("this link has expired")]
    Expired,
}

fn mac_hex(keys: &KeyRing, signed: &str) -> String {
    keys.link_mac(signed.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The code an SMS reply names its alert by ("YES 0042"): the last four digits of the
/// authorization's number.
pub fn reply_code(authorization_id: &str) -> String {
    let n = cardguard_engine::authorization_number(authorization_id).unwrap_or(0);
    format!("{:04}", n % 10_000)
}

/// An SMS reply read: "YES 0042" (or Y, はい) and "NO 0042" (or N, いいえ), in any case and
/// spacing; the answer and the code.
pub fn parse_reply(text: &str) -> Option<(bool, String)> {
    let words: Vec<String> = text.split_whitespace().map(str::to_uppercase).collect();
    let (answer, code) = match words.as_slice() {
        [a, c] => (a.as_str(), c.as_str()),
        _ => return None,
    };
    let yes = match answer {
        "YES" | "Y" | "はい" => true,
        "NO" | "N" | "いいえ" => false,
        _ => return None,
    };
    (code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit())).then(|| (yes, code.to_owned()))
}

/// The token of a link to `authorization_id` valid until `expires` (to the second).
pub fn token(keys: &KeyRing, authorization_id: &str, expires: Timestamp) -> String {
    let signed = format!("{authorization_id}.{}", expires.0.div_euclid(1000));
    let mac = mac_hex(keys, &signed);
    format!("{signed}.{mac}")
}

/// The authorization a token names, if it verifies and has not expired at `now`.
pub fn verify(keys: &KeyRing, token: &str, now: Timestamp) -> Result<String, LinkError> {
    let (signed, mac) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
    let (id, expires) = signed.split_once('.').ok_or(LinkError::Invalid)?;
    let want = mac_hex(keys, signed);
    if mac.len() != want.len() || !bool::from(mac.as_bytes().ct_eq(want.as_bytes())) {
        return Err(LinkError::Invalid);
    }
    let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
    if now.0.div_euclid(1000) > expires {
        return Err(LinkError::Expired);
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_their_alert_by_code() {
        assert_eq!(reply_code("au_000000120042"), "0042");
        assert_eq!(parse_reply(" yes  0042\n"), Some((true, "0042".into())));
        assert_eq!(parse_reply("いいえ 0042"), Some((false, "0042".into())));
        assert_eq!(parse_reply("N 1234"), Some((false, "1234".into())));
        for bad in ["yes", "maybe 0042", "yes 42", "yes 0042 please", ""] {
            assert_eq!(parse_reply(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_link_verifies_until_it_expires_and_not_once_changed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::load(&crate::config::KeysConfig::default(), dir.path())
            .unwrap()
            .0;
        let exp = Timestamp(1_800_000_000_000);
        let t = token(&keys, "au_000000000042", exp);
        assert_eq!(
            verify(&keys, &t, Timestamp(exp.0 - 1)).as_deref(),
            Ok("au_000000000042")
        );
        assert_eq!(
            verify(&keys, &t, Timestamp(exp.0 + 1000)),
            Err(LinkError::Expired)
        );
        let other = t.replace("042", "043");
        assert_eq!(verify(&keys, &other, exp), Err(LinkError::Invalid));
        let later = t.replace("1800000000", "1900000000");
        assert_eq!(verify(&keys, &later, exp), Err(LinkError::Invalid));
        for junk in ["", "x", "a.b", "a.b.c", &t[..t.len() - 1]] {
            assert_eq!(verify(&keys, junk, exp), Err(LinkError::Invalid), "{junk}");
        }
        // Another server's keys do not verify it.
        let other_dir = tempfile::tempdir().unwrap();
        let other_keys = KeyRing::load(&crate::config::KeysConfig::default(), other_dir.path())
            .unwrap()
            .0;
        assert_eq!(verify(&other_keys, &t, exp), Err(LinkError::Invalid));
    }
}
