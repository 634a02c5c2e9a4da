//! Property tests of request decoding: no input panics, and every refusal is a 4xx error
//! that names a field (or the JSON syntax) without echoing the card number.

use cardguard_server::api::dto::{AuthorizationReq, EnrollReq};
use cardguard_server::api::error::decode;
use proptest::prelude::*;
use serde_json::{Value, json};

fn valid() -> Value {
    json!({"id": "acq-000001", "timestamp": "2026-11-21T10:00:00-05:00",
     "card": {"number": "4123456789012349", "expiry": "2029-12", "csc": "123", "pin_block": "041277CDDEEFF669"},
     "amount": {"value": 12800, "currency": "JPY"},
     "merchant": {"id": "m-42", "terminal_id": "t-7", "name": "BIC CAMERA", "mcc": "5732",
                  "country": "US", "city": "New York", "lat": 40.71, "lon": -74.01},
     "channel": "card_present", "type": "purchase",
     "device": {"id": "d-9", "ip": "203.0.113.7", "user_agent": "x"}})
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::String),
        "[0-9]{0,25}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({"x": 1})),
    ]
}

/// Every path to a value in the document (objects only).
fn paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let mut p = prefix.clone();
            p.push(k.clone());
            out.push(p.clone());
            paths(x, p, out);
        }
    }
}

fn set(v: &mut Value, path: &[String], new: Option<Value>) {
    let (last, dirs) = path.split_last().unwrap();
    let mut cur = v;
    for d in dirs {
        cur = &mut cur[d.as_str()];
    }
    if let Value::Object(m) = cur {
        match new {
            Some(x) => {
                m.insert(last.clone(), x);
            }
            None => {
                m.remove(last);
            }
        }
    }
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match decode::<AuthorizationReq>(body) {
        Ok(req) => match req.validate() {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(e.status.is_client_error());
                prop_assert!(e.field.is_some(), "validation errors name a field: {e:?}");
                prop_assert!(!e.message.contains("4123456789012349"));
            }
        },
        Err(e) => {
            prop_assert!(e.status.is_client_error());
            prop_assert!(!e.message.contains("4123456789012349"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
        let _ = decode::<EnrollReq>(&bytes);
    }

    #[test]
    fn mutated_valid_requests_are_accepted_or_refused_with_a_field(
        choice in any::<prop::sample::Index>(),
        new in proptest::option::of(leaf()),
    ) {
        let mut v = valid();
        let mut ps = Vec::new();
        paths(&v, Vec::new(), &mut ps);
        let p = choice.get(&ps).clone();
        set(&mut v, &p, new);
        check(&serde_json::to_vec(&v).unwrap())?;
    }

    #[test]
    fn truncated_requests_are_refused_cleanly(cut in 0usize..400) {
        let full = serde_json::to_vec(&valid()).unwrap();
        let cut = cut.min(full.len().saturating_sub(1));
        check(&full[..cut])?;
    }
}

#[test]
fn the_valid_request_is_valid() {
    let req: AuthorizationReq = decode(&serde_json::to_vec(&valid()).unwrap()).unwrap();
    let (a, offset) = req.validate().unwrap();
    assert_eq!(offset, -300);
    assert_eq!(a.card.pin_block.as_deref().map(<[u8]>::len), Some(8));
}

/// The OpenAPI document lists every route, and its request examples are accepted as they
/// stand: the document cannot drift from the code unnoticed.
#[test]
fn openapi_document_matches_the_routes_and_the_decoders() {
    use cardguard_server::api::{OPENAPI, ROUTES};
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|methods| methods.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "a documented route the server does not have"
    );
    let schemas = &doc["components"]["schemas"];
    let example = serde_json::to_vec(&schemas["AuthorizationRequest"]["example"]).unwrap();
    let req: AuthorizationReq = decode(&example).unwrap();
    req.validate().unwrap();
    let example = serde_json::to_vec(&schemas["EnrollRequest"]["example"]).unwrap();
    let _: EnrollReq = decode(&example).unwrap();
    let example = serde_json::to_vec(&schemas["BatchRequest"]["example"]).unwrap();
    let batch: cardguard_server::api::dto::BatchReq = decode(&example).unwrap();
    assert_eq!(batch.cards.len(), 1);
    let example = serde_json::to_vec(&schemas["LabelRequest"]["example"]).unwrap();
    let _: cardguard_server::api::dto::LabelReq = decode(&example).unwrap();
    let example = serde_json::to_vec(&schemas["ReversalRequest"]["example"]).unwrap();
    let rev: cardguard_server::api::dto::ReversalReq = decode(&example).unwrap();
    rev.to_domain().unwrap();
    let example = serde_json::to_vec(&schemas["AuthenticationRequest"]["example"]).unwrap();
    let authn: cardguard_server::api::stepup::AuthenticationReq = decode(&example).unwrap();
    authn.validate(None).unwrap();
    // Required fields of the authorization schema are exactly those the decoder requires.
    let required: Vec<&str> = schemas["AuthorizationRequest"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in &required {
        let mut v: Value = serde_json::from_slice(
            &serde_json::to_vec(&schemas["AuthorizationRequest"]["example"]).unwrap(),
        )
        .unwrap();
        v.as_object_mut().unwrap().remove(*field);
        let e = decode::<AuthorizationReq>(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(*field));
    }
}
