//! `cardguard log …`: the event log of a data directory. `tail` prints its events as JSON
//! lines, optionally as a named consumer that resumes where it stopped (at least once: its
//! cursor is saved only after the events before it were printed).

use anyhow::{Context, Result};
use cardguard_app::consumer::{self, ConsumerOptions, Delivery, MemoryCursors, Start};
use cardguard_engine::Event;
use cardguard_store::{CursorStore, FileCursors, LogReader};
use std::io::Write;
use std::path::PathBuf;
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
}

pub fn run(cmd: LogCmd) -> Result<()> {
    match cmd {
        LogCmd::Tail {
            data_dir,
            consumer,
            from_end,
            follow,
        } => tail(data_dir, consumer, from_end, follow),
    }
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
