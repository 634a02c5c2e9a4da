//! List items as `POST /v1/lists/{name}/items` takes them: any text is an item of each kind
//! or an error, never a panic; an accepted item is written one way (checking it again gives
//! it back unchanged), and an IP range holds its own network address.
#![no_main]

use cardguard_engine::ListKind;
use cardguard_engine::lists::IpRange;
use libfuzzer_sys::fuzz_target;

const KINDS: [ListKind; 7] = [
    ListKind::Cards,
    ListKind::Merchants,
    ListKind::Terminals,
    ListKind::Devices,
    ListKind::Ips,
    ListKind::Countries,
    ListKind::EmailDomains,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for k in KINDS {
        if let Ok(v) = k.normalize(text) {
            assert_eq!(k.normalize(&v).as_deref(), Ok(v.as_str()));
        }
    }
    if let Some(r) = IpRange::parse(text)
        && let Some((net, _)) = r.to_string().split_once('/')
    {
        assert!(r.contains(net.parse().unwrap()));
    }
    let _ = ListKind::of_name(text);
});
