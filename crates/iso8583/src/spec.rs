//! The field table: for each data element 2 to 128, whether it is fixed or variable (LLVAR,
//! LLLVAR: its length in 2 or 3 ASCII digits first), its length or largest length, and
//! whether its data is ASCII text or raw bytes; and how the MTI and bitmaps are written.

use serde::Deserialize;
use std::collections::BTreeMap;

/// How a field's length is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LenType {
    /// Always `max` long.
    Fixed,
    /// Two ASCII digits of length, then the data.
    Llvar,
    /// Three ASCII digits of length, then the data.
    Lllvar,
}

impl LenType {
    /// Digits of the length prefix.
    pub fn digits(self) -> usize {
        match self {
            LenType::Fixed => 0,
            LenType::Llvar => 2,
            LenType::Lllvar => 3,
        }
    }
}

/// What a field's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Data {
    /// ASCII characters (bytes below 0x80); the length counts characters.
    Ascii,
    /// Raw bytes (a PIN block, ICC data, on networks that send them as such); the length
    /// counts bytes.
    Binary,
}

/// How the bitmaps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bitmap {
    /// 16 hexadecimal ASCII digits each.
    Hex,
    /// 8 raw bytes each.
    Binary,
}

impl Bitmap {
    /// Bytes one bitmap takes on the wire.
    pub fn wire_len(self) -> usize {
        match self {
            Bitmap::Hex => 16,
            Bitmap::Binary => 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub len: LenType,
    pub max: usize,
    pub data: Data,
    #[serde(default)]
    pub desc: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("field table is not valid TOML: {0}")]
    Toml(String),
    #[error("field {field}: {why}")]
    Field { field: String, why: &'static str },
    #[error("mti_len must be 4")]
    MtiLen,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    mti_len: usize,
    bitmap: Bitmap,
    field: BTreeMap<String, FieldSpec>,
}

/// A field table. Data elements absent from it are refused in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub bitmap: Bitmap,
    /// Index = data element number; 0 and 1 (the secondary bitmap) are never set.
    fields: Vec<Option<FieldSpec>>,
}

const DEFAULT_ASCII: &str = include_str!("default_ascii.toml");

impl Spec {
    /// The common ASCII variant (every field ASCII, bitmaps as hex digits), the one
    /// `pyiso8583` ships as `iso8583.specs.default_ascii`.
    pub fn default_ascii() -> Spec {
        Spec::from_toml(DEFAULT_ASCII).expect("the built-in field table is valid")
    }

    /// A field table from TOML (the form of `default_ascii.toml`).
    pub fn from_toml(text: &str) -> Result<Spec, SpecError> {
        let file: SpecFile = toml::from_str(text).map_err(|e| SpecError::Toml(e.to_string()))?;
        if file.mti_len != 4 {
            return Err(SpecError::MtiLen);
        }
        let mut fields = vec![None; 129];
        for (k, f) in file.field {
            let bad = |why| SpecError::Field {
                field: k.clone(),
                why,
            };
            let n: usize = k.parse().map_err(|_| bad("must be a number 2 to 128"))?;
            if !(2..=128).contains(&n) {
                return Err(bad("must be a number 2 to 128"));
            }
            let most = match f.len {
                LenType::Fixed => usize::MAX,
                LenType::Llvar => 99,
                LenType::Lllvar => 999,
            };
            if f.max == 0 || f.max > most {
                return Err(bad("max must be 1 or more, and fit the length digits"));
            }
            fields[n] = Some(f);
        }
        Ok(Spec {
            bitmap: file.bitmap,
            fields,
        })
    }

    /// The spec of data element `n`, if the table has it.
    pub fn field(&self, n: usize) -> Option<&FieldSpec> {
        self.fields.get(n).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_has_the_usual_fields() {
        let s = Spec::default_ascii();
        assert_eq!(s.bitmap, Bitmap::Hex);
        let f = |n| s.field(n).unwrap().clone();
        assert_eq!((f(2).len, f(2).max), (LenType::Llvar, 19));
        assert_eq!((f(4).len, f(4).max), (LenType::Fixed, 12));
        assert_eq!((f(43).len, f(43).max), (LenType::Fixed, 40));
        assert_eq!(
            (f(52).len, f(52).max, f(52).data),
            (LenType::Fixed, 16, Data::Ascii)
        );
        assert_eq!((f(55).len, f(55).max), (LenType::Lllvar, 510));
        assert!(s.field(1).is_none() && s.field(129).is_none());
    }

    #[test]
    fn a_bad_table_is_named() {
        let e = Spec::from_toml("mti_len = 4\nbitmap = \"hex\"\n[field]\n2 = { len = \"llvar\", max = 100, data = \"ascii\" }\n")
            .unwrap_err();
        assert!(
            matches!(e, SpecError::Field { ref field, .. } if field == "2"),
            "{e}"
        );
        assert!(Spec::from_toml("mti_len = 2\nbitmap = \"hex\"\n[field]\n").is_err());
    }
}
