//! Fuzzes the decoding of `POST /v1/cards` bodies.
#![no_main]
use cardguard_server::api::dto::EnrollReq;
use cardguard_server::api::error::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode::<EnrollReq>(data) {
        assert!(e.status.is_client_error());
    }
});
