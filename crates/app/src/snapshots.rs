//! Snapshot writing, off the request path: a frozen engine state (shards shared with the
//! live state, nothing copied) is encoded and streamed to disk by a thread of its own that
//! runs only on CPU time the requests leave over (`SCHED_IDLE`), so that on a small machine
//! the encoding never holds a core a request is waiting for. A snapshot is written only once
//! the log is durable up to its offset, and an older one never replaces a newer one.

use cardguard_engine::EngineState;
use cardguard_store::EventReader;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

/// Writes snapshots into a data directory.
pub struct SnapshotWriter {
    data_dir: PathBuf,
    reader: Arc<dyn EventReader>,
    /// The log offset of the newest snapshot on disk.
    last: AtomicU64,
    /// One writer at a time (the thread and a shutdown snapshot).
    lock: Mutex<()>,
    queue: Mutex<Option<mpsc::Sender<(u64, EngineState)>>>,
}

impl SnapshotWriter {
    pub fn new(data_dir: PathBuf, reader: Arc<dyn EventReader>, last: u64) -> Arc<Self> {
        Arc::new(SnapshotWriter {
            data_dir,
            reader,
            last: AtomicU64::new(last),
            lock: Mutex::new(()),
            queue: Mutex::new(None),
        })
    }

    /// The log offset of the newest snapshot written.
    pub fn last_offset(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    /// Hands a frozen state to the background thread (started on first use). When several
    /// wait, only the newest is written.
    pub fn submit(self: &Arc<Self>, offset: u64, state: EngineState) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.is_none() {
            let (tx, rx) = mpsc::channel::<(u64, EngineState)>();
            let me = Arc::downgrade(self);
            let started = std::thread::Builder::new()
                .name("snapshot-writer".into())
                .spawn(move || {
                    cardguard_store::idle_priority();
                    while let Ok(mut job) = rx.recv() {
                        while let Ok(newer) = rx.try_recv() {
                            job = newer;
                        }
                        let Some(w) = me.upgrade() else { return };
                        w.write(job.0, &job.1);
                        // What the engine copied since the freeze is freed here, a page at a
                        // time: the request threads that allocated it take it back in small
                        // steps instead of one pause.
                        job.1.release_gradually(|| {
                            std::thread::sleep(std::time::Duration::from_micros(200))
                        });
                    }
                });
            match started {
                Ok(_) => *q = Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "snapshot thread did not start; writing here");
                    drop(q);
                    self.write(offset, &state);
                    return;
                }
            }
        }
        if let Some(tx) = q.as_ref() {
            let _ = tx.send((offset, state));
        }
    }

    /// Encodes `state` and writes it as the snapshot at `offset`, on this thread.
    pub fn write(&self, offset: u64, state: &EngineState) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if offset <= self.last.load(Ordering::SeqCst) {
            return;
        }
        let t0 = Instant::now();
        let r = self.reader.wait_durable(offset).and_then(|()| {
            cardguard_store::write_snapshot_with(&self.data_dir, offset, |w| {
                w.write_all(cardguard_engine::STATE_FORMAT)?;
                postcard::to_io(state, w)
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            })
        });
        match r {
            Ok(bytes) => {
                self.last.store(offset, Ordering::SeqCst);
                tracing::info!(
                    offset,
                    bytes,
                    ms = t0.elapsed().as_millis() as u64,
                    "snapshot written"
                );
            }
            Err(e) => tracing::error!(error = %e, "snapshot failed"),
        }
    }
}
