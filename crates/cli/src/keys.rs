//! `cardguard keys create`: mints an API key for a data directory. Only its SHA-256 is kept
//! (in `DIR/api-keys.toml`, which a server reads at start when its config names no keys);
//! the key is printed once, with the config lines that give it to a server configured with
//! its own `[[auth.api_keys]]`.

use anyhow::{Context, Result};
use cardguard_app::Scope;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum KeysCmd {
    /// Mint an API key: printed once, only its SHA-256 kept. A running server reads it at its
    /// next start.
    Create {
        /// The data directory whose `api-keys.toml` gets the key's hash.
        #[arg(long, default_value = "cardguard-data")]
        data_dir: PathBuf,
        /// Scopes, comma-separated: admin, authorize, label, mail, metrics.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// A name for the key (letters, digits, - _ .).
        #[arg(long)]
        name: String,
    },
}

pub fn run(cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Create {
            data_dir,
            scopes,
            name,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s.trim()).with_context(|| {
                        format!(
                            "unknown scope {s:?} (admin, authorize, authenticate, label, mail, metrics)"
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let (key, hash) = cardguard_app::access::create_key(&data_dir, &name, &scopes)?;
            let names: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
            // A key change is audited, beside a running server if there is one.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            cardguard_store::AuditLog::open(&data_dir.join("audit.log"))?.append(
                now,
                "cli",
                "keys create",
                &name,
                &names.join(" "),
            )?;
            println!(
                "API key {name:?} with scopes {} (shown only this once):",
                names.join(", ")
            );
            println!("{key}");
            println!(
                "Its SHA-256 is in {}; a server on that directory whose config names no keys takes it at its next start.",
                data_dir
                    .join(cardguard_app::access::BOOTSTRAP_KEYS)
                    .display()
            );
            println!("For a config with its own keys, add instead:");
            println!(
                "[[auth.api_keys]]\nname = {name:?}\nkey_sha256 = \"{hash}\"\nscopes = {names:?}"
            );
            Ok(())
        }
    }
}
