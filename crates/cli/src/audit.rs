//! `cardguard audit`: the audit trail of a data directory (`audit.log`). `verify` checks its
//! hash chain and names the first entry changed, removed or out of order (exit 1), or
//! prints the head to record elsewhere; `show` prints the last entries.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum AuditCmd {
    /// Check the trail's hash chain; exit 1 naming the first bad entry.
    Verify {
        /// The data directory (or the audit.log file itself).
        path: PathBuf,
    },
    /// Print the last entries as JSON lines.
    Show {
        path: PathBuf,
        #[arg(long, default_value_t = 20)]
        tail: usize,
    },
}

fn trail(path: PathBuf) -> PathBuf {
    if path.is_dir() {
        path.join("audit.log")
    } else {
        path
    }
}

pub fn run(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify { path } => {
            let path = trail(path);
            let r = cardguard_store::audit::verify(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if let Some((line, seq, why)) = r.problem {
                println!(
                    "{}: {} entries verify; line {line} (entry {seq}): {why}",
                    path.display(),
                    r.entries
                );
                bail!("the audit trail does not verify");
            }
            println!(
                "{}: {} entries, the chain verifies; head: entry {} {}",
                path.display(),
                r.entries,
                r.head.0,
                r.head.1
            );
            Ok(())
        }
        AuditCmd::Show { path, tail } => {
            let path = trail(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(tail)..] {
                println!("{l}");
            }
            Ok(())
        }
    }
}
