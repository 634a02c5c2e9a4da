//! The event log: one append-only file of checksummed frames.
//!
//! Frame: `len: u32 LE` (of kind + payload), `crc32: u32 LE` (of kind + payload), `kind: u8`,
//! `payload`. Appends go through one writer thread that takes every frame waiting, writes
//! them with one `write` and makes them durable with one `fdatasync` (group commit), then
//! calls each frame's completion. The caller answers its client from that completion, so an
//! answered request is always in the log.
//!
//! At open the whole file is checked. A torn last frame (short, or failing its checksum with
//! nothing valid after it, or a zero-filled tail) is cut off; a bad frame with valid data
//! after it is corruption and refuses to open.

use crate::{StoreError, io_err};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

const HEADER: usize = 8;
/// Largest frame accepted (kind + payload).
pub const MAX_FRAME: usize = 1 << 20;

/// How hard a group commit pushes its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` after every group: survives power loss.
    Sync,
    /// Written to the kernel only: survives a crash of the process (SIGKILL), not of the
    /// machine.
    Buffered,
}

/// One frame read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub offset: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// What opening the log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    pub frames: u64,
    pub bytes: u64,
    /// Bytes of a torn tail that were cut off.
    pub truncated: u64,
}

/// Encodes one frame.
pub fn encode_frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() + 1) as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

enum Parsed<'a> {
    Ok {
        kind: u8,
        payload: &'a [u8],
        next: usize,
    },
    /// The frame does not fit in the data left, or its checksum fails and it reaches the end.
    Torn,
    Corrupt(&'static str),
}

fn parse(buf: &[u8], at: usize) -> Parsed<'_> {
    let rest = &buf[at..];
    if rest.iter().all(|&b| b == 0) {
        return Parsed::Torn;
    }
    if rest.len() < HEADER + 1 {
        return Parsed::Torn;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len > MAX_FRAME {
        return Parsed::Corrupt("frame length out of range");
    }
    if rest.len() < HEADER + len {
        return Parsed::Torn;
    }
    let body = &rest[HEADER..HEADER + len];
    if crc32fast::hash(body) != crc {
        return if rest.len() == HEADER + len {
            Parsed::Torn
        } else {
            Parsed::Corrupt("checksum mismatch")
        };
    }
    Parsed::Ok {
        kind: body[0],
        payload: &body[1..],
        next: at + HEADER + len,
    }
}

/// The log file and its writer.
pub struct EventLog {
    path: PathBuf,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Pending>,
    next_offset: u64,
}

struct Shared {
    /// Bytes that are written (and synced, under `Durability::Sync`).
    durable: Mutex<u64>,
    durable_cv: Condvar,
    failed: AtomicBool,
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Pending {
    bytes: Vec<u8>,
    end: u64,
    done: Option<Completion>,
}

impl EventLog {
    /// Opens (or creates) the log, checks every frame, cuts a torn tail, and hands each
    /// frame at or after `replay_from` to `replay`.
    pub fn open(
        path: &Path,
        durability: Durability,
        replay_from: u64,
        mut replay: impl FnMut(Frame) -> Result<(), StoreError>,
    ) -> Result<(EventLog, OpenReport), StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io_err(path))?;
        let mut report = OpenReport::default();
        let mut at = 0usize;
        while at < buf.len() {
            match parse(&buf, at) {
                Parsed::Ok {
                    kind,
                    payload,
                    next,
                } => {
                    if at as u64 >= replay_from {
                        replay(Frame {
                            offset: at as u64,
                            kind,
                            payload: payload.to_vec(),
                        })?;
                    }
                    report.frames += 1;
                    at = next;
                }
                Parsed::Torn => break,
                Parsed::Corrupt(why) => {
                    return Err(StoreError::Corrupt {
                        offset: at as u64,
                        why,
                    });
                }
            }
        }
        if (replay_from as usize) > at {
            return Err(StoreError::Corrupt {
                offset: replay_from,
                why: "the snapshot covers more of the log than the log holds",
            });
        }
        if at < buf.len() {
            report.truncated = (buf.len() - at) as u64;
            file.set_len(at as u64).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            tracing::warn!(
                offset = at,
                bytes = report.truncated,
                "cut a torn tail off the event log"
            );
        }
        report.bytes = at as u64;
        drop(buf);
        let shared = Arc::new(Shared {
            durable: Mutex::new(at as u64),
            durable_cv: Condvar::new(),
            failed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<Pending>();
        let sh = Arc::clone(&shared);
        let wpath = path.to_path_buf();
        std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || writer(file, wpath, durability, rx, sh))
            .map_err(io_err(path))?;
        Ok((
            EventLog {
                path: path.to_path_buf(),
                shared,
                tx,
                next_offset: at as u64,
            },
            report,
        ))
    }

    /// An appender that assigns offsets in call order. There is one: whoever holds it
    /// decides the order of the log.
    pub fn appender(&mut self) -> Appender<'_> {
        Appender { log: self }
    }

    /// Bytes appended so far (including frames still on their way to the disk).
    pub fn end_offset(&self) -> u64 {
        self.next_offset
    }

    /// Blocks until everything up to `offset` is durable (or the writer failed).
    pub fn wait_durable(&self, offset: u64) -> Result<(), StoreError> {
        self.watch().wait(offset)
    }

    pub fn durable_offset(&self) -> u64 {
        self.watch().durable()
    }

    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// A handle that waits for durability without holding the log.
    pub fn watch(&self) -> DurableWatch {
        DurableWatch(Arc::clone(&self.shared))
    }

    /// A reader for frames at known offsets (idempotent answers, labels).
    pub fn reader(&self) -> Result<LogReader, StoreError> {
        let f = File::open(&self.path).map_err(io_err(&self.path))?;
        Ok(LogReader {
            file: f,
            path: self.path.clone(),
        })
    }
}

/// Waits for the log to become durable up to an offset; cheap to clone.
#[derive(Clone)]
pub struct DurableWatch(Arc<Shared>);

impl DurableWatch {
    pub fn wait(&self, offset: u64) -> Result<(), StoreError> {
        let sh = &self.0;
        let mut d = sh.durable.lock().unwrap_or_else(|e| e.into_inner());
        while *d < offset {
            if sh.failed.load(Ordering::SeqCst) {
                return Err(StoreError::WriterFailed("a write failed".into()));
            }
            d = sh.durable_cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    pub fn durable(&self) -> u64 {
        *self.0.durable.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends frames; see [`EventLog::appender`].
pub struct Appender<'a> {
    log: &'a mut EventLog,
}

impl Appender<'_> {
    /// Queues a frame and returns its offset. `done` is called once the frame is durable,
    /// or with the error that stopped it.
    pub fn append(
        &mut self,
        kind: u8,
        payload: &[u8],
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Result<u64, StoreError> {
        if payload.len() + 1 > MAX_FRAME {
            return Err(StoreError::Corrupt {
                offset: self.log.next_offset,
                why: "frame too large",
            });
        }
        if self.log.failed() {
            return Err(StoreError::WriterFailed("an earlier write failed".into()));
        }
        let mut bytes = Vec::with_capacity(payload.len() + HEADER + 1);
        encode_frame(kind, payload, &mut bytes);
        let offset = self.log.next_offset;
        let end = offset + bytes.len() as u64;
        self.log
            .tx
            .send(Pending {
                bytes,
                end,
                done: Some(Box::new(done)),
            })
            .map_err(|_| StoreError::WriterFailed("writer thread is gone".into()))?;
        self.log.next_offset = end;
        Ok(offset)
    }
}

fn writer(
    mut file: File,
    path: PathBuf,
    durability: Durability,
    rx: mpsc::Receiver<Pending>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while buf.len() < (4 << 20) {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        buf.clear();
        for p in &batch {
            buf.extend_from_slice(&p.bytes);
        }
        let end = batch.last().map_or(0, |p| p.end);
        let result = if shared.failed.load(Ordering::SeqCst) {
            Err("an earlier write failed".to_string())
        } else {
            file.write_all(&buf)
                .and_then(|()| match durability {
                    Durability::Sync => file.sync_data(),
                    Durability::Buffered => Ok(()),
                })
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        match &result {
            Ok(()) => {
                let mut d = shared.durable.lock().unwrap_or_else(|e| e.into_inner());
                *d = end;
            }
            Err(e) => {
                tracing::error!(error = %e, "event log write failed: refusing further appends");
                shared.failed.store(true, Ordering::SeqCst);
            }
        }
        shared.durable_cv.notify_all();
        for mut p in batch.drain(..) {
            if let Some(done) = p.done.take() {
                done(result.clone().map_err(StoreError::WriterFailed));
            }
        }
    }
}

/// Reads single frames by offset.
pub struct LogReader {
    file: File,
    path: PathBuf,
}

impl LogReader {
    pub fn read_at(&self, offset: u64) -> Result<Frame, StoreError> {
        let mut head = [0u8; HEADER];
        self.file
            .read_exact_at(&mut head, offset)
            .map_err(io_err(&self.path))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_FRAME {
            return Err(StoreError::Corrupt {
                offset,
                why: "frame length out of range",
            });
        }
        let mut body = vec![0u8; len];
        self.file
            .read_exact_at(&mut body, offset + HEADER as u64)
            .map_err(io_err(&self.path))?;
        if crc32fast::hash(&body) != crc {
            return Err(StoreError::Corrupt {
                offset,
                why: "checksum mismatch",
            });
        }
        Ok(Frame {
            offset,
            kind: body[0],
            payload: body[1..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn append_all(log: &mut EventLog, items: &[(u8, &[u8])]) -> Vec<u64> {
        let (tx, rx) = channel();
        let mut offs = Vec::new();
        for (k, p) in items {
            let tx = tx.clone();
            offs.push(
                log.appender()
                    .append(*k, p, move |r| tx.send(r.is_ok()).unwrap())
                    .unwrap(),
            );
        }
        for _ in items {
            assert!(rx.recv().unwrap());
        }
        offs
    }

    fn reopen(path: &Path, from: u64) -> Result<(Vec<Frame>, OpenReport), StoreError> {
        let mut frames = Vec::new();
        let (_log, rep) = EventLog::open(path, Durability::Sync, from, |f| {
            frames.push(f);
            Ok(())
        })?;
        Ok((frames, rep))
    }

    #[test]
    fn appends_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, rep) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        assert_eq!(rep, OpenReport::default());
        let offs = append_all(&mut log, &[(1, b"one"), (2, b"two"), (1, b"three")]);
        log.wait_durable(log.end_offset()).unwrap();
        assert_eq!(
            log.reader().unwrap().read_at(offs[1]).unwrap().payload,
            b"two"
        );
        drop(log);
        let (frames, rep) = reopen(&p, 0).unwrap();
        assert_eq!(rep.frames, 3);
        let got: Vec<(u8, &[u8])> = frames
            .iter()
            .map(|f| (f.kind, f.payload.as_slice()))
            .collect();
        assert_eq!(got, vec![(1, &b"one"[..]), (2, b"two"), (1, b"three")]);
        // Replay from the second frame's offset skips the first.
        let (frames, _) = reopen(&p, offs[1]).unwrap();
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        append_all(&mut log, &[(1, b"kept"), (1, b"torn-record")]);
        drop(log);
        let full = std::fs::metadata(&p).unwrap().len();
        for cut in [1u64, 5, 9, 14] {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(full - cut).unwrap();
            drop(f);
            let (frames, rep) = reopen(&p, 0).unwrap();
            assert_eq!(frames.len(), 1, "cut {cut}");
            assert_eq!(rep.truncated, full - cut - rep.bytes);
            // Restore the record for the next cut.
            let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
            append_all(&mut log, &[(1, b"torn-record")]);
        }
        // A zero-filled tail (a crash after the size grew) is torn too.
        let f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all_at(&[0u8; 4096], full).unwrap();
        drop(f);
        let (frames, rep) = reopen(&p, 0).unwrap();
        assert_eq!((frames.len(), rep.truncated), (2, 4096));
    }

    #[test]
    fn a_bad_frame_before_good_ones_is_corruption_not_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        append_all(&mut log, &[(1, b"first"), (1, b"second")]);
        drop(log);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"X", 9).unwrap(); // inside the first payload
        drop(f);
        match reopen(&p, 0) {
            Err(StoreError::Corrupt { offset: 0, .. }) => {}
            other => panic!("expected corruption, got {other:?}"),
        }
        // The file was not truncated.
        assert!(std::fs::metadata(&p).unwrap().len() > 20);
    }

    #[test]
    fn group_commit_batches_concurrent_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Buffered, 0, |_| Ok(())).unwrap();
        let payloads: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let items: Vec<(u8, &[u8])> = payloads.iter().map(|p| (7u8, p.as_slice())).collect();
        append_all(&mut log, &items);
        drop(log);
        let (frames, _) = reopen(&p, 0).unwrap();
        assert_eq!(frames.len(), 2000);
        assert!(
            frames
                .iter()
                .enumerate()
                .all(|(i, f)| f.payload == (i as u32).to_le_bytes())
        );
    }
}
