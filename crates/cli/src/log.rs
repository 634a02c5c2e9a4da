//! `cardguard log …`: the event log of a data directory. `tail` prints its events as JSON
//! lines, optionally as a named consumer that resumes where it stopped (at least once: its
//! cursor is saved only after the events before it were printed). `verify` checks a whole
//! log (checksums, events, the authorization numbers in sequence, the snapshot's offset);
//! `repair` sets damaged spans aside and keeps every valid frame where it was.

use anyhow::{Context, Result};
use cardguard_app::consumer::{self, ConsumerOptions, Delivery, MemoryCursors, Start};
use cardguard_engine::Event;
use cardguard_store::{CursorStore, FileCursors, LogReader};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

#[derive(clap::Subcommand)]
pub enum LogCmd {
    /// Print the events of the log as JSON lines: `{"offset", "next", "kind", "event"}`.
    Tail {
        /// The data directory whose `events.log` to read.
        #[arg(long, default_value = "cardguard-data")]
        data_dir: PathBuf,
        /// Read as this consumer: resume after its saved cursor, save it as events are printed.
        #[arg(long)]
        consumer: Option<String>,
        /// Without a saved cursor, start at the end of the log (only new events).
        #[arg(long)]
        from_end: bool,
        /// Keep following the log as events arrive (otherwise stop at its end).
        #[arg(long)]
        follow: bool,
    },
    /// Check every frame of the log: checksums, that each event decodes, the authorization
    /// numbers in sequence, the snapshot's offset on a frame boundary. Exits 1 if the log is
    /// damaged. Read-only.
    Verify {
        /// The data directory whose `events.log` to check.
        data_dir: PathBuf,
    },
    /// Set the damaged spans of the log aside (stop the server first): their bytes are
    /// saved to `events.log.damaged-OFFSET`, a set-aside frame of the same length takes
    /// their place so that every valid frame (and the snapshot) stays where it was, and a
    /// torn tail is saved and cut. Says what it set aside.
    Repair {
        /// The data directory whose `events.log` to repair.
        data_dir: PathBuf,
    },
}

pub fn run(cmd: LogCmd) -> Result<()> {
    match cmd {
        LogCmd::Tail {
            data_dir,
            consumer,
            from_end,
            follow,
        } => tail(data_dir, consumer, from_end, follow),
        LogCmd::Verify { data_dir } => verify(&data_dir),
        LogCmd::Repair { data_dir } => repair(&data_dir),
    }
}

/// What a pass over a log found, frame by frame.
#[derive(Default)]
struct Audit {
    frames: u64,
    authorizations: u64,
    labels: u64,
    reversals: u64,
    answers: u64,
    authentications: u64,
    card_statuses: u64,
    coverage_decisions: u64,
    /// Frames standing where a repair set damaged bytes aside.
    set_aside: u64,
    /// The number the next authorization should have.
    next_number: Option<u64>,
    /// Authorization numbers not found: `(first, count)`.
    missing: Vec<(u64, u64)>,
    /// Frames whose event is wrong: offset and why.
    bad_events: Vec<(u64, String)>,
    /// Damaged spans: offset, where valid frames resume (if they do), why.
    damage: Vec<(u64, Option<u64>, String)>,
    snapshot: Option<u64>,
    snapshot_on_boundary: bool,
    /// Where the valid frames end, and the torn bytes after.
    end: u64,
    torn: u64,
}

impl Audit {
    fn frame(&mut self, f: &cardguard_store::Frame) {
        if self.snapshot.is_some_and(|s| s == f.offset || s == f.end()) {
            self.snapshot_on_boundary = true;
        }
        if f.kind == cardguard_store::KIND_SET_ASIDE {
            self.set_aside += 1;
            return;
        }
        self.frames += 1;
        match Event::decode(f.kind, &f.payload) {
            Ok(Event::Auth(r)) => {
                self.authorizations += 1;
                match cardguard_engine::authorization_number(&r.authorization_id) {
                    Some(n) => {
                        match self.next_number {
                            Some(want) if n > want => self.missing.push((want, n - want)),
                            Some(want) if n < want => self.bad_events.push((
                                f.offset,
                                format!("{} out of sequence", r.authorization_id),
                            )),
                            _ => {}
                        }
                        self.next_number = Some(n + 1);
                    }
                    None => self
                        .bad_events
                        .push((f.offset, "not an authorization id of cardguard".into())),
                }
            }
            Ok(Event::Label(_)) => self.labels += 1,
            Ok(Event::Reversal(_)) => self.reversals += 1,
            Ok(Event::Answer(_)) => self.answers += 1,
            Ok(Event::Authentication(_)) => self.authentications += 1,
            Ok(Event::CardStatus(_)) => self.card_statuses += 1,
            Ok(Event::Coverage(_)) => self.coverage_decisions += 1,
            Err(e) => self.bad_events.push((f.offset, e.to_string())),
        }
    }

    /// Every frame of the log, through damaged spans (counting what follows them).
    fn run(path: &Path, snapshot: Option<u64>) -> Result<Audit> {
        let mut a = Audit {
            snapshot,
            snapshot_on_boundary: snapshot.is_none_or(|s| s == 0),
            ..Audit::default()
        };
        let mut from = 0;
        loop {
            match cardguard_store::log::verify(path, from, None, |f| {
                a.frame(&f);
                Ok(())
            }) {
                Ok(r) => {
                    (a.end, a.torn) = (r.end, r.torn);
                    return Ok(a);
                }
                Err(cardguard_store::StoreError::Damaged { offset, next, why }) => {
                    a.damage.push((offset, Some(next), why.to_owned()));
                    from = next;
                }
                Err(cardguard_store::StoreError::Corrupt { offset, why }) => {
                    a.damage.push((offset, None, why.to_owned()));
                    a.end = offset;
                    return Ok(a);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Damage not yet set aside. Authorization numbers missing where a repair set spans
    /// aside are accounted for; missing where nothing was set aside, they are damage.
    fn is_damaged(&self) -> bool {
        !self.damage.is_empty()
            || !self.bad_events.is_empty()
            || (!self.missing.is_empty() && self.set_aside == 0)
            || !self.snapshot_on_boundary
    }

    fn missing_count(&self) -> u64 {
        self.missing.iter().map(|m| m.1).sum()
    }

    fn print(&self, path: &Path) {
        println!(
            "{}: {} frames ({} authorizations, {} labels, {} reversals, {} answers, {} authentications, {} card status changes, {} coverage decisions), valid through offset {}",
            path.display(),
            self.frames,
            self.authorizations,
            self.labels,
            self.reversals,
            self.answers,
            self.authentications,
            self.card_statuses,
            self.coverage_decisions,
            self.end
        );
        if let Some(s) = self.snapshot {
            if self.snapshot_on_boundary {
                println!("snapshot: covers the log up to offset {s}, on a frame boundary");
            } else {
                println!("snapshot: its offset {s} is not where a frame starts or ends");
            }
        }
        for (offset, next, why) in &self.damage {
            match next {
                Some(n) => println!(
                    "damaged: offset {offset} ({why}); valid frames resume at offset {n} ({} bytes between)",
                    n - offset
                ),
                None => println!("damaged: offset {offset} ({why}); nothing valid after it"),
            }
        }
        if self.set_aside > 0 {
            println!(
                "set aside: {} span(s) of damaged bytes, by an earlier `cardguard log repair`",
                self.set_aside
            );
        }
        for (first, n) in &self.missing {
            println!(
                "missing: {n} authorization number(s) from {}{first:012}",
                cardguard_engine::AUTH_ID_PREFIX
            );
        }
        for (offset, why) in &self.bad_events {
            println!("bad event: offset {offset}: {why}");
        }
        if self.torn > 0 {
            println!(
                "torn tail: {} bytes after offset {} (the last write, incomplete: the next start cuts it)",
                self.torn, self.end
            );
        }
    }
}

fn verify(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("events.log");
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    // A live log grows under the check: not while a server has the directory.
    let _lock = cardguard_store::DirLock::acquire(data_dir)?;
    let snapshot = cardguard_store::snapshot_offset(data_dir).unwrap_or_else(|e| {
        println!("snapshot: {e} (a start replays the whole log instead)");
        None
    });
    let audit = Audit::run(&path, snapshot)?;
    audit.print(&path);
    if audit.is_damaged() {
        anyhow::bail!(
            "the event log is damaged: stop the server, then `cardguard log repair {}` sets the damaged spans aside",
            data_dir.display()
        );
    }
    println!("ok");
    Ok(())
}

fn repair(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("events.log");
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    let _lock = cardguard_store::DirLock::acquire(data_dir)?;
    let snapshot = cardguard_store::snapshot_offset(data_dir).ok().flatten();
    let before = Audit::run(&path, snapshot)?;
    let (spans, _) = cardguard_store::log::repair(&path)
        .with_context(|| format!("repairing {}", path.display()))?;
    let after = Audit::run(&path, snapshot)?;
    if spans.is_empty() {
        println!("nothing to set aside: {} frames check out", after.frames);
        return Ok(());
    }
    for s in &spans {
        println!(
            "set aside {} bytes at offset {} ({}) into {}",
            s.len,
            s.offset,
            s.why,
            s.saved_to.display()
        );
    }
    println!(
        "kept {} events ({} authorizations, {} labels, {} reversals); set aside {} damaged span(s) holding {} authorization(s) (by their missing numbers) and whatever labels and reversals were among them",
        after.frames,
        after.authorizations,
        after.labels,
        after.reversals,
        spans.len(),
        after.missing_count()
    );
    if before.frames > after.frames {
        anyhow::bail!(
            "the repair lost frames that were valid before it: a bug, the saved spans hold them"
        );
    }
    Ok(())
}

fn tail(data_dir: PathBuf, name: Option<String>, from_end: bool, follow: bool) -> Result<()> {
    let path = data_dir.join("events.log");
    let reader =
        LogReader::open_file(&path).with_context(|| format!("opening {}", path.display()))?;
    let cursors: Box<dyn CursorStore> = match &name {
        Some(_) => Box::new(FileCursors::open(&data_dir)?),
        None => Box::new(MemoryCursors::default()),
    };
    let opts = ConsumerOptions {
        start: if from_end {
            Start::End
        } else {
            Start::Beginning
        },
        stop_at_end: !follow,
        ..ConsumerOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A reader that went away (a closed pipe) ends the tail; the event in hand stays
    // unacknowledged.
    let stop = AtomicBool::new(false);
    let mut failed: Option<std::io::Error> = None;
    consumer::run(
        name.as_deref().unwrap_or("tail"),
        &reader,
        cursors.as_ref(),
        &opts,
        &stop,
        |d: &Delivery<'_>| {
            let (kind, event) = match d.event {
                Event::Auth(r) => ("authorization", serde_json::to_value(r)?),
                Event::Label(l) => ("label", serde_json::to_value(l)?),
                Event::Reversal(r) => ("reversal", serde_json::to_value(r)?),
                Event::Answer(a) => ("answer", serde_json::to_value(a)?),
                Event::Authentication(a) => ("authentication", serde_json::to_value(a)?),
                Event::CardStatus(c) => ("card_status", serde_json::to_value(c)?),
                Event::Coverage(c) => ("coverage", serde_json::to_value(c)?),
            };
            let line = serde_json::json!({"offset": d.offset, "next": d.next, "kind": kind, "event": event});
            // Written through before the cursor may move past it.
            if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let msg = e.to_string();
                failed = Some(e);
                return Err(msg.into());
            }
            Ok(())
        },
    )?;
    match failed {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
