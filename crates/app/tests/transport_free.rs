//! The application crate stays transport-free: nothing of HTTP (axum, hyper, tower) or of
//! the HTTP adapter is among its dependencies, direct or indirect. Read from `Cargo.lock`
//! (every platform's and the dev-dependencies too, so the check errs on the strict side),
//! with no network and no cargo run.

use std::collections::{BTreeMap, BTreeSet};

/// Package name → the names of its dependencies (all versions of a name together).
fn lock_graph(text: &str) -> BTreeMap<String, Vec<String>> {
    let lock: toml::Table = text.parse().expect("Cargo.lock is TOML");
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().expect("packages") {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        let deps: Vec<String> = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter()
                    .filter_map(|x| x.as_str())
                    .map(|x| x.split(' ').next().unwrap_or(x).to_owned())
                    .collect()
            })
            .unwrap_or_default();
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

fn closure(graph: &BTreeMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(graph.get(&p).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn the_application_depends_on_no_transport() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    let graph = lock_graph(&text);
    let app = closure(&graph, "cardguard-app");
    assert!(app.contains("cardguard-engine"), "{app:?}");
    for banned in ["axum", "hyper", "tower", "http-body", "cardguard-server"] {
        assert!(!app.contains(banned), "cardguard-app depends on {banned}");
    }
    // The check sees HTTP where it is: the adapter does depend on it.
    let server = closure(&graph, "cardguard-server");
    assert!(server.contains("axum") && server.contains("hyper"));
}
