//! Encoding and decoding against a field table. The wire: the MTI (4 ASCII digits), the
//! primary bitmap, the secondary bitmap when bit 1 says so, then each present data element
//! in order: fixed ones as they are, variable ones after their length in ASCII digits.
//! Errors name the field and the offset and never echo field contents (a PAN may be one).

use crate::message::Message;
use crate::spec::{Bitmap, Data, LenType, Spec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("mti must be 4 digits")]
    Mti,
    #[error("field {0} is not in the field table")]
    Unknown(u8),
    #[error("field {field}: {why}")]
    Field { field: u8, why: String },
}

/// Why a message did not decode, and what could be read of it before: the MTI and the
/// STAN (data element 11) when they were, so that a format error can still be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}at byte {offset}: {why}", field.map(|f| format!("field {f} ")).unwrap_or_default())]
pub struct DecodeError {
    pub offset: usize,
    pub field: Option<u8>,
    pub why: &'static str,
    pub mti: Option<String>,
    pub stan: Option<String>,
}

/// Encodes `msg` under `spec`.
pub fn encode(spec: &Spec, msg: &Message) -> Result<Vec<u8>, EncodeError> {
    if msg.mti.len() != 4 || !msg.mti.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EncodeError::Mti);
    }
    let mut bits = [0u8; 16];
    let secondary = msg.secondary_bitmap || msg.fields.keys().any(|&n| n > 64);
    if secondary {
        bits[0] |= 0x80;
    }
    let mut body = Vec::new();
    for (&n, value) in &msg.fields {
        let bad = |why: String| EncodeError::Field { field: n, why };
        let f = spec.field(usize::from(n)).ok_or(EncodeError::Unknown(n))?;
        if f.data == Data::Ascii && !value.is_ascii() {
            return Err(bad("must be ASCII".into()));
        }
        match f.len {
            LenType::Fixed if value.len() != f.max => {
                return Err(bad(format!("must be {} long, not {}", f.max, value.len())));
            }
            LenType::Llvar | LenType::Lllvar if value.len() > f.max => {
                return Err(bad(format!(
                    "must be at most {} long, not {}",
                    f.max,
                    value.len()
                )));
            }
            _ => {}
        }
        let d = f.len.digits();
        if d > 0 {
            body.extend_from_slice(format!("{:0d$}", value.len()).as_bytes());
        }
        body.extend_from_slice(value);
        let i = usize::from(n) - 1;
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    let mut out = Vec::with_capacity(4 + 32 + body.len());
    out.extend_from_slice(msg.mti.as_bytes());
    let maps = if secondary { 2 } else { 1 };
    for m in 0..maps {
        let map = &bits[m * 8..m * 8 + 8];
        match spec.bitmap {
            Bitmap::Hex => {
                for b in map {
                    out.extend_from_slice(format!("{b:02X}").as_bytes());
                }
            }
            Bitmap::Binary => out.extend_from_slice(map),
        }
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// One bitmap at `at`, as 8 bytes.
fn read_bitmap(spec: &Spec, b: &[u8], at: usize) -> Option<[u8; 8]> {
    let raw = b.get(at..at + spec.bitmap.wire_len())?;
    let mut map = [0u8; 8];
    match spec.bitmap {
        Bitmap::Binary => map.copy_from_slice(raw),
        Bitmap::Hex => {
            for (i, pair) in raw.chunks(2).enumerate() {
                let hex = |c: u8| (c as char).to_digit(16);
                map[i] = (hex(pair[0])? * 16 + hex(pair[1])?) as u8;
            }
        }
    }
    Some(map)
}

/// Decodes one whole message (`b` must hold it and nothing after it).
pub fn decode(spec: &Spec, b: &[u8]) -> Result<Message, DecodeError> {
    let mut err = DecodeError {
        offset: 0,
        field: None,
        why: "",
        mti: None,
        stan: None,
    };
    let fail = |mut e: DecodeError, offset: usize, field: Option<u8>, why: &'static str| {
        e.offset = offset;
        e.field = field;
        e.why = why;
        e
    };
    let mti = match b.get(..4) {
        Some(m) if m.iter().all(u8::is_ascii_digit) => String::from_utf8_lossy(m).into_owned(),
        _ => return Err(fail(err, 0, None, "the message type must be 4 digits")),
    };
    err.mti = Some(mti.clone());
    let mut at = 4;
    let Some(primary) = read_bitmap(spec, b, at) else {
        return Err(fail(
            err,
            at,
            None,
            "the primary bitmap is missing or not hexadecimal",
        ));
    };
    at += spec.bitmap.wire_len();
    let mut bits = [0u8; 16];
    bits[..8].copy_from_slice(&primary);
    let secondary = primary[0] & 0x80 != 0;
    if secondary {
        let Some(s) = read_bitmap(spec, b, at) else {
            return Err(fail(
                err,
                at,
                Some(1),
                "the secondary bitmap is missing or not hexadecimal",
            ));
        };
        bits[8..].copy_from_slice(&s);
        at += spec.bitmap.wire_len();
    }
    let mut msg = Message {
        mti,
        secondary_bitmap: secondary,
        ..Message::default()
    };
    for n in 2..=128usize {
        let i = n - 1;
        if bits[i / 8] & (0x80 >> (i % 8)) == 0 {
            continue;
        }
        let field = Some(n as u8);
        let Some(f) = spec.field(n) else {
            return Err(fail(
                err,
                at,
                field,
                "the bitmap names a field the table does not have",
            ));
        };
        let len = match f.len {
            LenType::Fixed => f.max,
            lt => {
                let d = lt.digits();
                let digits = match b.get(at..at + d) {
                    Some(x) if x.iter().all(u8::is_ascii_digit) => x,
                    Some(_) => return Err(fail(err, at, field, "the length is not digits")),
                    None => return Err(fail(err, at, field, "the message ends in the length")),
                };
                at += d;
                let len = digits
                    .iter()
                    .fold(0usize, |a, &c| a * 10 + usize::from(c - b'0'));
                if len > f.max {
                    return Err(fail(
                        err,
                        at - d,
                        field,
                        "the length exceeds the field's largest",
                    ));
                }
                len
            }
        };
        let Some(value) = b.get(at..at + len) else {
            return Err(fail(err, at, field, "the message ends inside the field"));
        };
        if f.data == Data::Ascii && !value.is_ascii() {
            return Err(fail(err, at, field, "the field is not ASCII"));
        }
        if n == 11 {
            err.stan = Some(String::from_utf8_lossy(value).into_owned());
        }
        msg.fields.insert(n as u8, value.to_vec());
        at += len;
    }
    if at != b.len() {
        return Err(fail(err, at, None, "bytes after the last field"));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Message {
        let mut m = Message::new("0100");
        m.set(2, "4111111111111111")
            .set(3, "000000")
            .set(4, "000000012800")
            .set(7, "1201101500")
            .set(11, "000123")
            .set(43, format!("{:<25}{:<13}{}", "BIC CAMERA", "Tokyo", "JP"))
            .set(49, "392");
        m
    }

    #[test]
    fn a_message_round_trips_and_reads_as_the_standard_says() {
        let spec = Spec::default_ascii();
        let m = auth();
        let b = encode(&spec, &m).unwrap();
        // MTI, then the bitmap: fields 2, 3, 4, 7 (0x72), 11 (0x20), 43 (0x20 in byte 6),
        // 49 (0x80 in byte 7).
        assert_eq!(&b[..20], b"01007220000000208000");
        assert_eq!(&b[20..38], b"164111111111111111");
        assert_eq!(decode(&spec, &b).unwrap(), m);
        let mut big = m.clone();
        big.set(90, "0".repeat(42));
        let b2 = encode(&spec, &big).unwrap();
        assert_eq!(&b2[4..6], b"F2", "bit 1 says a secondary bitmap follows");
        let back = decode(&spec, &b2).unwrap();
        assert_eq!(back.fields, big.fields);
        assert_eq!(encode(&spec, &back).unwrap(), b2);
    }

    #[test]
    fn bad_messages_name_the_field_and_keep_the_mti_and_stan() {
        let spec = Spec::default_ascii();
        let b = encode(&spec, &auth()).unwrap();
        // Cut inside field 43: the STAN (11) was read before it.
        let e = decode(&spec, &b[..b.len() - 10]).unwrap_err();
        assert_eq!(e.field, Some(43));
        assert_eq!(
            (e.mti.as_deref(), e.stan.as_deref()),
            (Some("0100"), Some("000123"))
        );
        assert!(!e.to_string().contains("4111"), "{e}");
        let mut extra = b.clone();
        extra.push(b'x');
        assert_eq!(
            decode(&spec, &extra).unwrap_err().why,
            "bytes after the last field"
        );
        assert!(decode(&spec, b"01X0").unwrap_err().mti.is_none());
        let mut m = auth();
        m.set(4, "12800");
        assert!(matches!(
            encode(&spec, &m),
            Err(EncodeError::Field { field: 4, .. })
        ));
        m.set(4, "000000012800").set(2, "4".repeat(20));
        assert!(matches!(
            encode(&spec, &m),
            Err(EncodeError::Field { field: 2, .. })
        ));
    }

    #[test]
    fn binary_fields_and_bitmaps_in_a_network_table() {
        let spec = Spec::from_toml(
            "mti_len = 4\nbitmap = \"binary\"\n[field]\n11 = { len = \"fixed\", max = 6, data = \"ascii\" }\n52 = { len = \"fixed\", max = 8, data = \"binary\" }\n55 = { len = \"lllvar\", max = 255, data = \"binary\" }\n",
        )
        .unwrap();
        let mut m = Message::new("0100");
        m.set(11, "000001")
            .set(52, vec![0x04, 0x12, 0x34, 0xFF, 0x00, 0x80, 0x7F, 0x01])
            .set(55, vec![0x9F, 0x02, 0x06, 0, 0, 0, 0, 0x12, 0x80]);
        let b = encode(&spec, &m).unwrap();
        assert_eq!(b.len(), 4 + 8 + 6 + 8 + 3 + 9);
        assert_eq!(decode(&spec, &b).unwrap(), m);
    }
}
