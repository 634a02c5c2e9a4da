//! Deserializing the types written as short strings (`"JP"`, `"5732"`, `"JPY"`) from the
//! string as the format holds it, without an owned copy first.

use std::fmt;
use std::marker::PhantomData;

/// Deserializes a string and parses it with `parse`; its error is the format's error.
pub(crate) fn parse_str<'de, D, T, E>(d: D, parse: fn(&str) -> Result<T, E>) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: fmt::Display,
{
    struct Parsed<T, E>(fn(&str) -> Result<T, E>, PhantomData<T>);
    impl<T, E: fmt::Display> serde::de::Visitor<'_> for Parsed<T, E> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<X: serde::de::Error>(self, v: &str) -> Result<T, X> {
            (self.0)(v).map_err(X::custom)
        }
    }
    d.deserialize_str(Parsed(parse, PhantomData))
}

#[cfg(test)]
mod tests {
    use crate::{CardToken, Country, Currency, Last4, Mcc, ResponseCode};

    #[test]
    fn strings_parse_as_the_types_do_and_errors_name_the_value() {
        let (c, m): (Country, Mcc) = serde_json::from_str(r#"["JP", "5732"]"#).unwrap();
        assert_eq!((c.as_str(), m.code()), ("JP", 5732));
        // Escaped strings come through the format's scratch buffer: the same value.
        let c: Country = serde_json::from_str(r#""\u004aP""#).unwrap();
        assert_eq!(c.as_str(), "JP");
        let (cur, l4, rc): (Currency, Last4, ResponseCode) =
            serde_json::from_str(r#"["JPY", "1234", "05"]"#).unwrap();
        assert_eq!(
            (cur.code(), l4.to_string(), rc.as_str()),
            ("JPY", "1234".into(), "05")
        );
        assert!(serde_json::from_str::<Country>(r#""XX""#).is_err());
        assert!(serde_json::from_str::<Country>("12").is_err());
        assert!(serde_json::from_str::<CardToken>(r#""not hex""#).is_err());
        assert!(serde_json::from_str::<ResponseCode>(r#""zz""#).is_err());
    }
}
