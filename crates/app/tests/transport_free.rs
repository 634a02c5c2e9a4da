//! The application crate stays transport-free: nothing of HTTP (axum, hyper, tower) or of
//! the HTTP adapter's DTOs is among its dependencies. Checked with `cargo tree`.

#[test]
fn the_application_depends_on_no_transport() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "cardguard-app",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("cardguard-engine"), "{tree}");
    for banned in ["axum", "hyper", "tower", "http-body", "cardguard-server"] {
        let found: Vec<&str> = tree
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(banned))
            .collect();
        assert!(found.is_empty(), "cardguard-app depends on {found:?}");
    }
}
