//! Consumers of the event log: a tailing reader that follows the log as durable events
//! arrive, with a durable cursor per consumer. Delivery is at least once and in log order:
//! the cursor is saved only after the handler returned for every event before it, so a
//! consumer killed at any moment resumes at or before the first event it had not finished,
//! and never skips one. A handler that fails is retried on the same event.
//!
//! Alerts, cases and label feedback run on this; so does `cardguard log tail`.

use cardguard_engine::Event;
use cardguard_store::{CursorStore, EventReader, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One event handed to a consumer: where it starts in the log and where the next begins.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub offset: u64,
    pub next: u64,
    pub event: &'a Event,
}

/// What a handler returns when it could not process an event (it is delivered again).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Where a consumer with no saved cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the first event of the log.
    Beginning,
    /// From the events that arrive after it starts.
    End,
}

/// Called before a consumer saves its position: what the handler wrote without waiting for
/// the disk is made durable here, so that a position is never saved ahead of it.
pub type SyncHook = std::sync::Arc<dyn Fn() -> Result<(), HandlerError> + Send + Sync>;

/// The `linger` of the notifications consumer: a fortieth of the second within which a
/// cardholder is told, and the events of a busy 25 ms written in one transaction.
pub const LINGER: Duration = Duration::from_millis(25);

/// How often those consumers save their position: each save syncs the cursor file (and
/// for the notifications `notify.db` first: a few fsyncs); a crash repeats at most this much of their work, which they
/// do idempotently.
pub const ACK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ConsumerOptions {
    pub start: Start,
    /// Events read at a time.
    pub batch: usize,
    /// The cursor is saved after this many events ...
    pub ack_every: usize,
    /// ... or when this much time passed since the last save, whichever comes first.
    pub ack_interval: Duration,
    /// Return once every durable event is processed instead of waiting for more.
    pub stop_at_end: bool,
    /// Wait before delivering an event again after its handler failed.
    pub retry_after: Duration,
    /// Writes what the handler buffered (see [`Buffer`]): run after the events of each read
    /// are handled (once `linger` has passed since the first of them; retried until it
    /// succeeds), and before each save of the position. A consumer that falls behind writes
    /// hundreds of events in one transaction instead of one each.
    pub flush: Option<SyncHook>,
    /// How long a consumer that caught up waits for more events before `flush`: the
    /// events of that time share one write (notifications and cases show this much later).
    pub linger: Duration,
    /// Run before each save of the position, after `flush` (see [`SyncHook`]).
    pub before_save: Option<SyncHook>,
    /// The thread's priority beside the authorizations.
    pub priority: Priority,
}

/// How long a [`Priority::Low`] consumer works before it offers the core (`sched_yield`):
/// HTTP p99 at 5,000/s with 10,000 cards median 0.82 ms (0.55–1.41 ms) against 1.07 ms
/// (0.86–1.19 ms) when it kept the core for as long as the scheduler let it (`bench http`,
/// builds in turns), as low as the same consumer under `SCHED_IDLE`, which gets far less
/// of busy cores (docs/PERFORMANCE.md).
pub const YIELD_AFTER: Duration = Duration::from_micros(100);

/// How a consumer's thread shares the cores with the authorizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Normal,
    /// Work someone waits for within a second (notices): nice 19, which keeps a share of
    /// cores the authorizations keep busy, and the core offered ([`YIELD_AFTER`]) after
    /// each tenth of a millisecond of work: the scheduler lets a thread at nice 19 keep the
    /// core it has while a woken authorization thread waits for its turn (up to a slice,
    /// 1.5 ms on two cores), where a thread that offers it is passed over at once.
    Low,
    /// Work nobody waits for (indexing for analysts): `SCHED_IDLE`, which an
    /// authorization's thread that wakes takes the core from at once (at nice 19 the
    /// consumer kept it for a while: HTTP p99 at 5,000/s 1.8–1.9 ms against 0.9 ms), and
    /// which gets little of cores others keep busy.
    Idle,
}

impl std::fmt::Debug for ConsumerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerOptions")
            .field("start", &self.start)
            .field("batch", &self.batch)
            .field("ack_every", &self.ack_every)
            .field("ack_interval", &self.ack_interval)
            .field("stop_at_end", &self.stop_at_end)
            .field("retry_after", &self.retry_after)
            .field("flush", &self.flush.is_some())
            .field("linger", &self.linger)
            .field("before_save", &self.before_save.is_some())
            .field("priority", &self.priority)
            .finish()
    }
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            start: Start::Beginning,
            batch: 512,
            ack_every: 1024,
            ack_interval: Duration::from_millis(200),
            stop_at_end: false,
            retry_after: Duration::from_millis(500),
            flush: None,
            linger: Duration::ZERO,
            before_save: None,
            priority: Priority::Normal,
        }
    }
}

/// Why a consumer stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("consumer {name}: {source}")]
    Store { name: String, source: StoreError },
    #[error("consumer {name}: event at offset {offset}: {why}")]
    Event {
        name: String,
        offset: u64,
        why: String,
    },
}

/// Runs consumer `name` on this thread until `stop` is set (or, with `stop_at_end`, until it
/// has processed every durable event). Returns the position it saved last.
pub fn run(
    name: &str,
    reader: &dyn EventReader,
    cursors: &dyn CursorStore,
    opts: &ConsumerOptions,
    stop: &AtomicBool,
    handler: impl FnMut(&Delivery<'_>) -> Result<(), HandlerError>,
) -> Result<u64, ConsumerError> {
    let pos = start_at(name, reader, cursors, opts.start)?;
    follow(name, pos, reader, cursors, opts, stop, handler)
}

/// [`run`] from `pos`, where the consumer starts.
fn follow(
    name: &str,
    mut pos: u64,
    reader: &dyn EventReader,
    cursors: &dyn CursorStore,
    opts: &ConsumerOptions,
    stop: &AtomicBool,
    mut handler: impl FnMut(&Delivery<'_>) -> Result<(), HandlerError>,
) -> Result<u64, ConsumerError> {
    let store = store_error(name);
    let mut acks = Acks {
        saved: pos,
        since: 0,
        at: Instant::now(),
    };
    let ack = |pos: u64, acks: &mut Acks, now: bool| -> Result<(), ConsumerError> {
        acks.since += 1;
        if now || acks.since >= opts.ack_every || acks.at.elapsed() >= opts.ack_interval {
            if pos != acks.saved {
                for hook in [&opts.flush, &opts.before_save].into_iter().flatten() {
                    hook().map_err(|e| ConsumerError::Event {
                        name: name.to_owned(),
                        offset: pos,
                        why: format!("before saving the position: {e}"),
                    })?;
                }
                cursors.save(name, pos).map_err(store)?;
                acks.saved = pos;
            }
            acks.since = 0;
            acks.at = Instant::now();
        }
        Ok(())
    };
    // Writes what the handler buffered, retried until it succeeds; false when stopped first.
    let flush = |pos: u64| -> bool {
        let Some(flush) = &opts.flush else {
            return true;
        };
        while let Err(e) = flush() {
            tracing::warn!(consumer = name, offset = pos, error = %e, "writing the handled events failed; trying again");
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(opts.retry_after);
        }
        true
    };
    // When the oldest event handled but not yet flushed was handled.
    let mut unflushed: Option<Instant> = None;
    // Since the core was last offered (only a consumer at low priority offers it).
    let mut working = Instant::now();
    'outer: while !stop.load(Ordering::Relaxed) {
        let frames = reader.read_from(pos, opts.batch.max(1)).map_err(store)?;
        if frames.is_empty() {
            if let Some(since) = unflushed {
                let waited = since.elapsed();
                if waited < opts.linger && !opts.stop_at_end {
                    // Caught up: the events of the rest of the linger share the write. A
                    // sleep, not a wait for the next event: one wake-up, not one per event.
                    std::thread::sleep(opts.linger - waited);
                    working = Instant::now();
                    continue;
                }
                if !flush(pos) {
                    break 'outer;
                }
                unflushed = None;
            }
            ack(pos, &mut acks, true)?;
            if opts.stop_at_end {
                break;
            }
            reader
                .wait_beyond(pos, Duration::from_millis(100))
                .map_err(store)?;
            working = Instant::now();
            continue;
        }
        for f in &frames {
            if f.kind == cardguard_store::KIND_SET_ASIDE {
                // Damaged bytes `cardguard log repair` set aside: no event to deliver.
                pos = f.end();
                ack(pos, &mut acks, false)?;
                continue;
            }
            let event = Event::decode(f.kind, &f.payload).map_err(|e| ConsumerError::Event {
                name: name.to_owned(),
                offset: f.offset,
                why: e.to_string(),
            })?;
            let d = Delivery {
                offset: f.offset,
                next: f.end(),
                event: &event,
            };
            while let Err(e) = handler(&d) {
                tracing::warn!(consumer = name, offset = f.offset, error = %e, "handler failed; delivering the event again");
                // What was processed so far is safe to acknowledge.
                ack(pos, &mut acks, true)?;
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                std::thread::sleep(opts.retry_after);
            }
            unflushed.get_or_insert_with(Instant::now);
            if opts.priority == Priority::Low && working.elapsed() >= YIELD_AFTER {
                std::thread::yield_now();
                working = Instant::now();
            }
            pos = d.next;
            ack(pos, &mut acks, false)?;
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
        }
        if unflushed.is_some_and(|t| t.elapsed() >= opts.linger) {
            if !flush(pos) {
                break 'outer;
            }
            unflushed = None;
        }
    }
    ack(pos, &mut acks, true)?;
    Ok(acks.saved)
}

/// What a handler writes for its events, kept until [`ConsumerOptions::flush`] writes them
/// together. A failed write keeps them for the next try.
#[derive(Default)]
pub struct Buffer<T>(std::sync::Mutex<T>);

impl<T: Default> Buffer<T> {
    /// Adds to what is buffered.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }

    /// Hands what is buffered to `write` (which skips an empty batch); emptied only when it
    /// succeeds.
    pub fn flush<E>(&self, write: impl FnOnce(&T) -> Result<(), E>) -> Result<(), E> {
        let mut items = self.lock();
        write(&items)?;
        *items = T::default();
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The cursor as saved, and the events and time since.
struct Acks {
    saved: u64,
    since: usize,
    at: Instant,
}

/// Cursors kept in memory only: for a reader that does not resume (`cardguard log tail`
/// without a consumer name) and for tests.
#[derive(Default)]
pub struct MemoryCursors(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl CursorStore for MemoryCursors {
    fn load(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(consumer)
            .copied())
    }
    fn save(&self, consumer: &str, offset: u64) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(consumer.to_owned(), offset);
        Ok(())
    }
}

/// A consumer running on its own thread; dropping the handle leaves it running, `stop`
/// ends it after the event in hand (its cursor saved).
pub struct ConsumerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<u64, ConsumerError>>>,
}

impl ConsumerHandle {
    /// Stops the consumer and waits for it; returns the position it saved last.
    pub fn stop(mut self) -> Result<u64, ConsumerError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ConsumerError::Event {
                name: "?".into(),
                offset: 0,
                why: "the consumer thread panicked".into(),
            }),
            None => Ok(0),
        }
    }
}

/// A store error of consumer `name`.
fn store_error(name: &str) -> impl Fn(StoreError) -> ConsumerError + Copy + '_ {
    move |source| ConsumerError::Store {
        name: name.to_owned(),
        source,
    }
}

/// Where consumer `name` starts: its saved position, or, the first time, `start` (saved).
fn start_at(
    name: &str,
    reader: &dyn EventReader,
    cursors: &dyn CursorStore,
    start: Start,
) -> Result<u64, ConsumerError> {
    let store = store_error(name);
    match cursors.load(name).map_err(store)? {
        Some(p) => Ok(p),
        None => {
            let p = match start {
                Start::Beginning => 0,
                Start::End => reader.durable().map_err(store)?,
            };
            cursors.save(name, p).map_err(store)?;
            Ok(p)
        }
    }
}

/// Starts consumer `name` on a thread of its own. Its position (on a first start the log's
/// end under `Start::End`, saved) is taken before this returns: a thread of low priority that runs late
/// on busy cores would otherwise start after the events appended meanwhile, and never see
/// them (a fraud alert of the first minutes lost).
pub fn spawn(
    name: &str,
    reader: Arc<dyn EventReader>,
    cursors: Arc<dyn CursorStore>,
    opts: ConsumerOptions,
    mut handler: impl FnMut(&Delivery<'_>) -> Result<(), HandlerError> + Send + 'static,
) -> std::io::Result<ConsumerHandle> {
    let pos = start_at(name, reader.as_ref(), cursors.as_ref(), opts.start)
        .map_err(std::io::Error::other)?;
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    let n = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("consumer-{name}"))
        .spawn(move || {
            match opts.priority {
                Priority::Normal => {}
                Priority::Low => cardguard_store::low_priority(),
                Priority::Idle => cardguard_store::idle_priority(),
            }
            let r = follow(
                &n,
                pos,
                reader.as_ref(),
                cursors.as_ref(),
                &opts,
                &st,
                &mut handler,
            );
            if let Err(e) = &r {
                tracing::error!(error = %e, "consumer stopped");
            }
            r
        })?;
    Ok(ConsumerHandle {
        stop,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardguard_core::Timestamp;
    use cardguard_engine::LabelRecord;
    use cardguard_store::{Durability, EventLog, FileCursors};
    use std::sync::Mutex;

    fn label(i: u64) -> Vec<u8> {
        Event::Label(LabelRecord {
            authorization_id: format!("au_{i:012}"),
            fraud: i.is_multiple_of(2),
            ts: Timestamp(i as i64),
            source: None,
        })
        .encode(cardguard_engine::EventEncoding::default())
        .unwrap()
    }

    /// Appends the labels of authorizations `ids`, one event each.
    fn append_labels(log: &mut EventLog, ids: std::ops::Range<u64>) {
        for i in ids {
            log.appender()
                .append(Event::KIND_LABEL, &label(i), |_| {})
                .unwrap();
        }
    }

    /// A new event log in `dir`, written (not synced) with a flush every 5 ms.
    fn open_log(dir: &std::path::Path) -> EventLog {
        EventLog::open(
            &dir.join("events.log"),
            Durability::Write { sync_every_ms: 5 },
            0,
            |_| Ok(()),
        )
        .unwrap()
        .0
    }

    fn id(d: &Delivery<'_>) -> String {
        d.event.authorization_id().to_owned()
    }

    /// Cursors held back on the consumer's own thread until released: a thread that starts
    /// late, as one of low priority does on busy cores.
    struct LateThread {
        inner: FileCursors,
        released: Arc<std::sync::atomic::AtomicBool>,
    }

    impl CursorStore for LateThread {
        fn load(&self, consumer: &str) -> Result<Option<u64>, cardguard_store::StoreError> {
            let on_consumer = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("consumer-"));
            while on_consumer && !self.released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.inner.load(consumer)
        }
        fn save(&self, consumer: &str, offset: u64) -> Result<(), cardguard_store::StoreError> {
            self.inner.save(consumer, offset)
        }
    }

    /// A consumer that starts at the log's end sees every event appended after `spawn`
    /// returned, however late its thread runs.
    #[test]
    fn a_first_start_at_the_end_takes_the_end_when_spawned_not_when_its_thread_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        append_labels(&mut log, 0..3);
        log.wait_durable(log.end_offset()).unwrap();
        let reader: Arc<dyn EventReader> = Arc::new(log.reader().unwrap());
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cursors: Arc<dyn CursorStore> = Arc::new(LateThread {
            inner: FileCursors::open(dir.path()).unwrap(),
            released: Arc::clone(&released),
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let h = spawn(
            "late",
            reader,
            cursors,
            ConsumerOptions {
                start: Start::End,
                ..ConsumerOptions::default()
            },
            move |d| {
                s.lock().unwrap().push(id(d));
                Ok(())
            },
        )
        .unwrap();
        append_labels(&mut log, 3..6);
        log.wait_durable(log.end_offset()).unwrap();
        released.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        h.stop().unwrap();
        let want: Vec<String> = (3..6).map(|i| format!("au_{i:012}")).collect();
        assert_eq!(*seen.lock().unwrap(), want);
    }

    #[test]
    fn follows_live_appends_in_order_and_resumes_after_its_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        let reader: Arc<dyn EventReader> = Arc::new(log.reader().unwrap());
        let cursors: Arc<dyn CursorStore> = Arc::new(FileCursors::open(dir.path()).unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let mut fail_once = true;
        let h = spawn(
            "test",
            Arc::clone(&reader),
            Arc::clone(&cursors),
            ConsumerOptions {
                ack_every: 7,
                retry_after: Duration::from_millis(1),
                ..ConsumerOptions::default()
            },
            move |d| {
                if d.offset > 0 && fail_once {
                    fail_once = false;
                    return Err("transient".into());
                }
                s.lock().unwrap().push(id(d));
                Ok(())
            },
        )
        .unwrap();
        append_labels(&mut log, 0..500);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < 500 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let end = h.stop().unwrap();
        assert_eq!(end, log.end_offset());
        let got = seen.lock().unwrap().clone();
        let want: Vec<String> = (0..500).map(|i| format!("au_{i:012}")).collect();
        assert_eq!(
            got, want,
            "every event once, in order, the failed one again"
        );
        append_labels(&mut log, 500..510);
        let mut rest = Vec::new();
        let opts = ConsumerOptions {
            stop_at_end: true,
            ..ConsumerOptions::default()
        };
        run(
            "test",
            reader.as_ref(),
            cursors.as_ref(),
            &opts,
            &AtomicBool::new(false),
            |d| {
                rest.push(id(d));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(rest.first().map(String::as_str), Some("au_000000000500"));
        assert_eq!(rest.len(), 10);
        // The hook runs before every save, after the events before the position.
        append_labels(&mut log, 510..530);
        let handled = Arc::new(Mutex::new(0usize));
        let synced = Arc::new(Mutex::new(Vec::new()));
        let (h2, s2) = (Arc::clone(&handled), Arc::clone(&synced));
        let opts = ConsumerOptions {
            stop_at_end: true,
            ack_every: 8,
            before_save: Some(Arc::new(move || {
                s2.lock().unwrap().push(*h2.lock().unwrap());
                Ok(())
            })),
            ..ConsumerOptions::default()
        };
        run(
            "hooked",
            reader.as_ref(),
            cursors.as_ref(),
            &ConsumerOptions {
                start: Start::End,
                ..opts.clone()
            },
            &AtomicBool::new(false),
            |_| Ok(()),
        )
        .unwrap();
        let from_end = synced.lock().unwrap().len();
        cursors.save("hooked", 0).unwrap();
        run(
            "hooked",
            reader.as_ref(),
            cursors.as_ref(),
            &opts,
            &AtomicBool::new(false),
            |_| {
                *handled.lock().unwrap() += 1;
                Ok(())
            },
        )
        .unwrap();
        let calls = synced.lock().unwrap()[from_end..].to_vec();
        assert_eq!(
            calls.first(),
            Some(&8),
            "after 8 events, before their save: {calls:?}"
        );
        assert_eq!(calls.last(), Some(&530));
        assert!(calls.windows(2).all(|w| w[0] <= w[1]));
        // A new consumer that starts at the end sees only what comes later.
        let mut late = Vec::new();
        let opts = ConsumerOptions {
            start: Start::End,
            stop_at_end: true,
            ..ConsumerOptions::default()
        };
        run(
            "late",
            reader.as_ref(),
            cursors.as_ref(),
            &opts,
            &AtomicBool::new(false),
            |d| {
                late.push(id(d));
                Ok(())
            },
        )
        .unwrap();
        assert!(late.is_empty());
    }

    /// A handler that buffers: every event written once, in order, in a few batches (the
    /// first write fails and is tried again with nothing lost), and the position saved only
    /// once the events before it are written.
    #[test]
    fn buffered_writes_go_in_batches_before_the_position_moves() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        append_labels(&mut log, 0..300);
        let reader = log.reader().unwrap();
        let cursors = MemoryCursors::default();
        let buffer: Arc<Buffer<Vec<String>>> = Arc::default();
        let written = Arc::new(Mutex::new(Vec::<String>::new()));
        let writes = Arc::new(Mutex::new(0usize));
        let saves = Arc::new(Mutex::new(Vec::new()));
        let flush: SyncHook = {
            let failing = Mutex::new(true);
            let (b, w, n) = (
                Arc::clone(&buffer),
                Arc::clone(&written),
                Arc::clone(&writes),
            );
            Arc::new(move || {
                b.flush(|items: &Vec<String>| {
                    if items.is_empty() {
                        return Ok(());
                    }
                    *n.lock().unwrap() += 1;
                    if std::mem::take(&mut *failing.lock().unwrap()) {
                        return Err(HandlerError::from("disk busy"));
                    }
                    w.lock().unwrap().extend(items.iter().cloned());
                    Ok(())
                })
            })
        };
        let (w2, s2) = (Arc::clone(&written), Arc::clone(&saves));
        let opts = ConsumerOptions {
            stop_at_end: true,
            batch: 100,
            ack_every: 150,
            retry_after: Duration::from_millis(1),
            flush: Some(flush),
            before_save: Some(Arc::new(move || {
                s2.lock().unwrap().push(w2.lock().unwrap().len());
                Ok(())
            })),
            ..ConsumerOptions::default()
        };
        let b = Arc::clone(&buffer);
        run(
            "buffered",
            &reader,
            &cursors,
            &opts,
            &AtomicBool::new(false),
            |d| {
                b.with(|v| v.push(id(d)));
                Ok(())
            },
        )
        .unwrap();
        let want: Vec<String> = (0..300).map(|i| format!("au_{i:012}")).collect();
        assert_eq!(*written.lock().unwrap(), want);
        let writes = *writes.lock().unwrap();
        assert!((4..=6).contains(&writes), "{writes} writes for 300 events");
        assert_eq!(cursors.load("buffered").unwrap(), Some(log.end_offset()));
        // The save after event 150 came with its 150 events written.
        assert_eq!(saves.lock().unwrap().first(), Some(&150));
    }
}
