//! `cardguard rules`: `check FILE` validates a ruleset offline with the same parser, schema
//! and errors as `PUT /v1/rules` (each error as `FILE:LINE:COLUMN: ...`, exit 1 when there is
//! one); `default` prints the ruleset a new data directory starts with.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum RulesCmd {
    /// Validate a ruleset file (TOML, as `PUT /v1/rules` takes it) without a server.
    Check {
        /// The ruleset file.
        file: PathBuf,
    },
    /// Print the default ruleset (what the engine's thresholds did before rules).
    Default,
}

pub fn run(cmd: RulesCmd) -> Result<()> {
    match cmd {
        RulesCmd::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            match cardguard_engine::Policy::compile(&text, 0) {
                Ok(p) => {
                    let rs = p.ruleset();
                    println!(
                        "{}: {} rules, ok{}",
                        file.display(),
                        rs.sources().len(),
                        if rs.lists().is_empty() {
                            String::new()
                        } else {
                            format!(" (lists: @{})", rs.lists().join(", @"))
                        }
                    );
                    Ok(())
                }
                Err(errors) => {
                    for e in &errors {
                        println!(
                            "{}:{}:{}: {}{}",
                            file.display(),
                            e.at.line,
                            e.at.column,
                            e.rule
                                .as_deref()
                                .map(|r| format!("rule {r}: "))
                                .unwrap_or_default(),
                            e.message
                        );
                    }
                    bail!(
                        "{}: {} error(s); the ruleset is refused",
                        file.display(),
                        errors.len()
                    )
                }
            }
        }
        RulesCmd::Default => {
            print!("{}", cardguard_engine::DEFAULT_RULES);
            Ok(())
        }
    }
}
