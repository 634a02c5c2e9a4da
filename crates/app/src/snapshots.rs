//! Snapshot writing, off the request path. A snapshot is a chain of segments (see
//! `cardguard_engine::segment`): each holds what changed since the one before and one slice
//! of the state whole, so that writing one costs the changes and a sixteenth of the state,
//! not the whole state. A frozen engine state (shards shared with the live state, nothing
//! copied) is handed over with its changes, in the order the states were frozen, and encoded
//! and streamed to disk by a thread of its own that runs only on CPU time the requests leave
//! over (`SCHED_IDLE`). A segment is written only once the log is durable up to its offset;
//! the changes of a segment not written (a newer one was waiting, or the write failed) go
//! into the next one.

use cardguard_engine::segment::{Changes, Frozen, SEGMENT_FORMAT, next_slices, window};
use cardguard_store::{EventReader, SegmentHead};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

/// A segment of the chain on disk.
#[derive(Debug, Clone)]
pub struct Link {
    pub seq: u64,
    pub offset: u64,
    pub slices: Range<u32>,
}

impl From<&SegmentHead> for Link {
    fn from(h: &SegmentHead) -> Link {
        Link {
            seq: h.seq,
            offset: h.offset,
            slices: h.slices.clone(),
        }
    }
}

/// The chain a writer continues: the segments the state was loaded from (empty when it was
/// not loaded from segments: the next segment starts a chain with the whole state) and the
/// number after every segment file on disk.
pub struct ChainStart {
    pub links: Vec<Link>,
    pub next_seq: u64,
    /// The log offset of the snapshot the state was loaded from (0 if none).
    pub offset: u64,
}

/// The chain as the writer knows it, and changes not written yet.
struct Chain {
    /// The segments that together hold the state, oldest first.
    links: Vec<Link>,
    next_seq: u64,
    carry: Option<Changes>,
}

struct Job {
    offset: u64,
    frozen: Frozen,
    /// Told whether the segment (or a newer one that took this one's place) was written.
    done: Option<mpsc::Sender<bool>>,
}

/// Writes snapshots into a data directory.
pub struct SnapshotWriter {
    data_dir: PathBuf,
    reader: Arc<dyn EventReader>,
    /// The log offset of the newest snapshot on disk.
    last: AtomicU64,
    chain: Mutex<Chain>,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl SnapshotWriter {
    pub fn new(data_dir: PathBuf, reader: Arc<dyn EventReader>, start: ChainStart) -> Arc<Self> {
        Arc::new(SnapshotWriter {
            data_dir,
            reader,
            last: AtomicU64::new(start.offset),
            chain: Mutex::new(Chain {
                links: start.links,
                next_seq: start.next_seq,
                carry: None,
            }),
            queue: Mutex::new(None),
        })
    }

    /// The log offset of the newest snapshot written.
    pub fn last_offset(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    /// Hands a frozen state to the background thread (started on first use). Call it in
    /// the order the states were frozen (under the lock they were frozen under): each
    /// segment holds the changes since the one before. When several wait, only the newest
    /// is written, with the changes of all.
    pub fn submit(self: &Arc<Self>, offset: u64, frozen: Frozen) {
        self.send(Job {
            offset,
            frozen,
            done: None,
        });
    }

    /// Like [`SnapshotWriter::submit`], and returns a receiver told when the segment is
    /// written (true) or failed (false): for a snapshot at shutdown, waited for after the
    /// lock is released.
    pub fn submit_and_notify(
        self: &Arc<Self>,
        offset: u64,
        frozen: Frozen,
    ) -> mpsc::Receiver<bool> {
        let (tx, rx) = mpsc::channel();
        self.send(Job {
            offset,
            frozen,
            done: Some(tx),
        });
        rx
    }

    fn send(self: &Arc<Self>, job: Job) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let me = Arc::downgrade(self);
            let started = std::thread::Builder::new()
                .name("snapshot-writer".into())
                .spawn(move || {
                    cardguard_store::idle_priority();
                    while let Ok(job) = rx.recv() {
                        let Some(w) = me.upgrade() else { return };
                        w.run(job, &rx);
                    }
                });
            match started {
                Ok(_) => *q = Some(tx),
                Err(e) => {
                    // The changes wait for the next try; the log holds every event meanwhile.
                    tracing::error!(error = %e, "snapshot thread did not start");
                    self.keep(job.frozen.changes);
                    if let Some(d) = job.done {
                        let _ = d.send(false);
                    }
                    return;
                }
            }
        }
        if let Some(tx) = q.as_ref() {
            let _ = tx.send(job);
        }
    }

    /// Changes of a segment not written, for the next one.
    fn keep(&self, changes: Changes) {
        let mut chain = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        match chain.carry.as_mut() {
            Some(c) => c.absorb(changes),
            None => chain.carry = Some(changes),
        }
    }

    /// Writes the newest of the jobs waiting (the older ones' changes go with it), tells
    /// whoever waits, and lets go of the frozen states.
    fn run(&self, mut job: Job, rx: &mpsc::Receiver<Job>) {
        let mut done: Vec<mpsc::Sender<bool>> = job.done.take().into_iter().collect();
        let mut older = Vec::new();
        while let Ok(mut newer) = rx.try_recv() {
            newer
                .frozen
                .changes
                .absorb(std::mem::take(&mut job.frozen.changes));
            done.extend(newer.done.take());
            older.push(std::mem::replace(&mut job, newer).frozen.state);
        }
        let ok = self.write(job.offset, &mut job.frozen);
        for d in done {
            let _ = d.send(ok);
        }
        // What the engine copied since the freeze is freed here, a page at a time: the
        // request threads that allocated it take it back in small steps instead of one pause.
        for state in older.into_iter().chain([job.frozen.state]) {
            state.release_gradually(|| std::thread::sleep(std::time::Duration::from_micros(200)));
        }
    }

    /// Encodes and writes the next segment of the chain, the state at `offset`, on this
    /// thread. Returns whether it was written.
    fn write(&self, offset: u64, frozen: &mut Frozen) -> bool {
        let mut chain = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(earlier) = chain.carry.take() {
            frozen.changes.absorb(earlier);
        }
        if offset <= self.last.load(Ordering::SeqCst) {
            // Nothing new since the last segment; what changed goes with the next.
            chain.carry = Some(std::mem::take(&mut frozen.changes));
            return true;
        }
        let t0 = Instant::now();
        let prev = chain.links.last();
        let slices = next_slices(prev.map(|l| &l.slices));
        let prev = prev.map(|l| l.offset);
        let seq = chain.next_seq;
        let segment = frozen.segment(slices.clone());
        let r = self.reader.wait_durable(offset).and_then(|()| {
            cardguard_store::write_segment(&self.data_dir, seq, offset, prev, slices.clone(), |w| {
                w.write_all(SEGMENT_FORMAT)?;
                postcard::to_io(&segment, w)
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            })
        });
        match r {
            Ok(bytes) => {
                self.last.store(offset, Ordering::SeqCst);
                chain.next_seq = seq + 1;
                chain.links.push(Link {
                    seq,
                    offset,
                    slices: slices.clone(),
                });
                let ranges: Vec<_> = chain.links.iter().map(|l| l.slices.clone()).collect();
                let start = window(&ranges).unwrap_or(0);
                chain.links.drain(..start);
                let first = chain.links.first().map_or(seq, |l| l.seq);
                if let Err(e) = cardguard_store::remove_segments_before(&self.data_dir, first) {
                    tracing::warn!(error = %e, "snapshot segments no longer needed were not removed");
                }
                tracing::info!(
                    offset,
                    bytes,
                    seq,
                    slices = ?slices,
                    changed = frozen.changes.len(),
                    ms = t0.elapsed().as_millis() as u64,
                    "snapshot segment written"
                );
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed");
                chain.carry = Some(std::mem::take(&mut frozen.changes));
                false
            }
        }
    }
}
