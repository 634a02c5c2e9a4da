//! Fuzzes the decoding and validation of `POST /v1/authorizations` bodies.
#![no_main]
use cardguard_server::api::dto::AuthorizationReq;
use cardguard_server::api::error::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode::<AuthorizationReq>(data) {
        Ok(req) => {
            if let Err(e) = req.validate() {
                assert!(e.status.is_client_error());
            }
        }
        Err(e) => assert!(e.status.is_client_error()),
    }
});
