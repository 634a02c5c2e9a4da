//! Progress of long work on stderr: a bar redrawn in place on a terminal (at most ten times
//! a second), and nothing but one closing line when stderr is a pipe or a file.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    what: String,
    total: u64,
    tty: bool,
    started: Instant,
    drawn: Option<Instant>,
    done: u64,
}

impl Progress {
    pub fn new(what: &str, total: u64) -> Progress {
        Progress {
            what: what.to_owned(),
            total,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            drawn: None,
            done: 0,
        }
    }

    /// Time since the work started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Moves the bar to `done` of `total`, with `note` after it.
    pub fn set(&mut self, done: u64, note: &str) {
        self.done = done;
        if !self.tty
            || self
                .drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.drawn = Some(Instant::now());
        draw(&self.what, done, self.total, note);
    }

    /// Ends the bar (on a terminal) and prints one line with what was done and how long it
    /// took.
    pub fn finish(self, summary: &str) {
        if self.tty && self.drawn.is_some() {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "{}: {summary} ({:.1} s)",
            self.what,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn draw(what: &str, done: u64, total: u64, note: &str) {
    let pct = (done * 100).checked_div(total).unwrap_or(100).min(100) as usize;
    let filled = pct / 4;
    eprint!(
        "\r{what:<16} [{}{}] {pct:>3}% {note}\x1b[K",
        "#".repeat(filled),
        " ".repeat(25 - filled)
    );
    let _ = std::io::stderr().flush();
}

/// A stage's progress without state: drawn in place on a terminal (a newline when it is
/// done); on a pipe, one line when it is done and nothing before.
pub fn stage(what: &str, done: u64, total: u64, note: &str) {
    if std::io::stderr().is_terminal() {
        draw(what, done, total, note);
        if done >= total {
            eprintln!();
        }
    } else if done >= total {
        eprintln!("{what}: {done} of {total} {note}");
    }
}
