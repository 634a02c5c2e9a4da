//! The event log: one append-only file of checksummed frames.
//!
//! Frame: `len: u32 LE` (of kind + payload), `crc32: u32 LE` (of kind + payload), `kind: u8`,
//! `payload`. The appender writes each frame to the file at once (under the caller's lock,
//! so the file's order is the caller's order); a syncer thread makes every frame written so
//! far durable with one `fdatasync` (group commit) and then calls their completions. The
//! caller answers its client from that completion, so an answered request is always in the
//! log.
//!
//! At open the frames after the snapshot's offset are checked. A torn last frame (short, or failing its checksum with
//! nothing valid after it, or a zero-filled tail) is cut off; a bad frame with valid data
//! after it is corruption and refuses to open.

use crate::{StoreError, io_err};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

const HEADER: usize = 8;
/// Largest frame accepted (kind + payload).
pub const MAX_FRAME: usize = 1 << 20;

/// When an appended frame counts as durable, and so when its caller may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After a group `fdatasync` that covers it: survives a power cut. Answers wait for the
    /// disk, and a disk whose syncs stall now and then stalls them too.
    Sync,
    /// Once written to the kernel: survives any crash of the process (SIGKILL included). A
    /// background `fdatasync` every `sync_every_ms` bounds what a power cut can take.
    Write { sync_every_ms: u64 },
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
    /// Frames read (those after the snapshot offset).
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

/// Reads frames from `from` to the end of the file, handing each to `replay`. Returns the
/// offset where the valid frames end and how many there were; a torn tail after that offset
/// is for the caller to cut.
fn scan(
    file: &File,
    path: &Path,
    from: u64,
    file_len: u64,
    replay: &mut impl FnMut(Frame) -> Result<(), StoreError>,
) -> Result<(u64, u64), StoreError> {
    use std::io::{BufReader, Seek, SeekFrom};
    let mut r = BufReader::with_capacity(1 << 20, file);
    r.seek(SeekFrom::Start(from)).map_err(io_err(path))?;
    let mut at = from;
    let mut frames = 0u64;
    let mut head = [0u8; HEADER];
    while at < file_len {
        let remaining = file_len - at;
        if remaining < (HEADER + 1) as u64 {
            break; // torn: not even a header and a kind byte
        }
        r.read_exact(&mut head).map_err(io_err(path))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 && crc == 0 {
            // A zero-filled tail (the file grew, the data never came) is torn; zeros
            // followed by data are not.
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).map_err(io_err(path))?;
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err(StoreError::Corrupt {
                offset: at,
                why: "zero frame before data",
            });
        }
        if len == 0 || len > MAX_FRAME {
            return Err(StoreError::Corrupt {
                offset: at,
                why: "frame length out of range",
            });
        }
        if (HEADER + len) as u64 > remaining {
            break; // torn: the frame runs past the end
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(io_err(path))?;
        if crc32fast::hash(&body) != crc {
            if (HEADER + len) as u64 == remaining {
                break; // torn: the last frame, half written
            }
            return Err(StoreError::Corrupt {
                offset: at,
                why: "checksum mismatch",
            });
        }
        let kind = body[0];
        body.remove(0);
        replay(Frame {
            offset: at,
            kind,
            payload: body,
        })?;
        frames += 1;
        at += (HEADER + len) as u64;
    }
    Ok((at, frames))
}

/// The log file, its appender and (under `Durability::Sync`) its syncer thread.
pub struct EventLog {
    path: PathBuf,
    file: File,
    durability: Durability,
    shared: Arc<Shared>,
    next_offset: u64,
    buf: Vec<u8>,
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Shared {
    /// Bytes that are durable: synced under `Durability::Sync`, written otherwise.
    durable: Mutex<u64>,
    durable_cv: Condvar,
    failed: AtomicBool,
    /// Frames written but not yet synced, with what to call once they are.
    pending: Mutex<Pending>,
    pending_cv: Condvar,
}

#[derive(Default)]
struct Pending {
    /// Bytes written to the file so far.
    written: u64,
    waiting: Vec<(u64, Completion)>,
    closed: bool,
}

impl EventLog {
    /// Opens (or creates) the log, checks the frames from `replay_from` on (those before are
    /// covered by a snapshot), cuts a torn tail, and hands each frame to `replay`.
    pub fn open(
        path: &Path,
        durability: Durability,
        replay_from: u64,
        mut replay: impl FnMut(Frame) -> Result<(), StoreError>,
    ) -> Result<(EventLog, OpenReport), StoreError> {
        let file = crate::private::options()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        if replay_from > file_len {
            return Err(StoreError::Corrupt {
                offset: replay_from,
                why: "the snapshot covers more of the log than the log holds",
            });
        }
        let (at, frames) = scan(&file, path, replay_from, file_len, &mut replay)?;
        let mut report = OpenReport {
            frames,
            bytes: at,
            truncated: 0,
        };
        if at < file_len {
            report.truncated = file_len - at;
            file.set_len(at).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            tracing::warn!(
                offset = at,
                bytes = report.truncated,
                "cut a torn tail off the event log"
            );
        }
        let shared = Arc::new(Shared {
            durable: Mutex::new(at),
            durable_cv: Condvar::new(),
            failed: AtomicBool::new(false),
            pending: Mutex::new(Pending {
                written: at,
                ..Pending::default()
            }),
            pending_cv: Condvar::new(),
        });
        let sync_file = file.try_clone().map_err(io_err(path))?;
        let sh = Arc::clone(&shared);
        let spath = path.to_path_buf();
        std::thread::Builder::new()
            .name("event-log-sync".into())
            .spawn(move || match durability {
                Durability::Sync => syncer(sync_file, spath, sh),
                Durability::Write { sync_every_ms } => {
                    flusher(sync_file, spath, sh, sync_every_ms, at)
                }
            })
            .map_err(io_err(path))?;
        let log = EventLog {
            path: path.to_path_buf(),
            file,
            durability,
            shared,
            next_offset: at,
            buf: Vec::new(),
        };
        Ok((log, report))
    }

    /// An appender that assigns offsets in call order. There is one: whoever holds it
    /// decides the order of the log.
    pub fn appender(&mut self) -> Appender<'_> {
        Appender { log: self }
    }

    /// Bytes appended so far (including frames not yet synced).
    pub fn end_offset(&self) -> u64 {
        self.next_offset
    }

    /// Blocks until everything up to `offset` is durable (or the log failed).
    pub fn wait_durable(&self, offset: u64) -> Result<(), StoreError> {
        self.shared.wait_for(offset)
    }

    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// A reader of this log: frames at known offsets (idempotent answers, labels) and the
    /// durable frames in order (consumers), bounded by what is durable.
    pub fn reader(&self) -> Result<LogReader, StoreError> {
        let f = File::open(&self.path).map_err(io_err(&self.path))?;
        Ok(LogReader {
            file: f,
            path: self.path.clone(),
            live: Some(Arc::clone(&self.shared)),
        })
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let mut p = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.closed = true;
        self.shared.pending_cv.notify_all();
    }
}

impl Shared {
    fn set_durable(&self, end: u64) {
        let mut d = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if end > *d {
            *d = end;
        }
        drop(d);
        self.durable_cv.notify_all();
    }

    /// Blocks until everything before `offset` is durable, or the log failed.
    fn wait_for(&self, offset: u64) -> Result<(), StoreError> {
        let mut d = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        while *d < offset {
            if self.failed.load(Ordering::SeqCst) {
                return Err(StoreError::WriterFailed("a write failed".into()));
            }
            d = self.durable_cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    fn fail(&self, why: &str) {
        tracing::error!(
            error = why,
            "event log write failed: refusing further appends"
        );
        self.failed.store(true, Ordering::SeqCst);
        self.durable_cv.notify_all();
    }
}

impl Frame {
    /// Where the next frame starts.
    pub fn end(&self) -> u64 {
        self.offset + (HEADER + 1 + self.payload.len()) as u64
    }
}

/// Appends frames; see [`EventLog::appender`].
pub struct Appender<'a> {
    log: &'a mut EventLog,
}

impl Appender<'_> {
    /// Writes a frame to the file and returns its offset. `done` is called once the frame is
    /// durable: at once under `Durability::Write` (the kernel has it), after the next
    /// group `fdatasync` under `Durability::Sync`; or with the error that stopped it.
    pub fn append(
        &mut self,
        kind: u8,
        payload: &[u8],
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Result<u64, StoreError> {
        let log = &mut *self.log;
        if payload.len() + 1 > MAX_FRAME {
            return Err(StoreError::Corrupt {
                offset: log.next_offset,
                why: "frame too large",
            });
        }
        if log.failed() {
            return Err(StoreError::WriterFailed("an earlier write failed".into()));
        }
        log.buf.clear();
        encode_frame(kind, payload, &mut log.buf);
        let offset = log.next_offset;
        let end = offset + log.buf.len() as u64;
        if let Err(e) = (&log.file).write_all(&log.buf) {
            let why = format!("{}: {e}", log.path.display());
            log.shared.fail(&why);
            return Err(StoreError::WriterFailed(why));
        }
        log.next_offset = end;
        match log.durability {
            Durability::Write { .. } => {
                log.shared
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .written = end;
                log.shared.pending_cv.notify_one();
                log.shared.set_durable(end);
                done(Ok(()));
            }
            Durability::Sync => {
                let mut p = log.shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                p.written = end;
                p.waiting.push((end, Box::new(done)));
                drop(p);
                log.shared.pending_cv.notify_one();
            }
        }
        Ok(offset)
    }
}

/// Under `Durability::Write`: asleep while everything written is synced; once new frames
/// come, it lets them gather for `every_ms`, then makes them durable with one `fdatasync`.
fn flusher(file: File, path: PathBuf, shared: Arc<Shared>, every_ms: u64, mut synced: u64) {
    loop {
        {
            let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            while p.written <= synced && !p.closed {
                p = shared.pending_cv.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.written <= synced {
                return; // closed, nothing left to sync
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(every_ms));
        let written = shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .written;
        match file.sync_data() {
            Ok(()) => synced = written,
            Err(e) => {
                shared.fail(&format!("{}: {e}", path.display()));
                return;
            }
        }
    }
}

/// The group commit: whenever frames are waiting, one `fdatasync` covers all of them (and
/// whatever was written while it ran), then their completions are called.
fn syncer(file: File, path: PathBuf, shared: Arc<Shared>) {
    loop {
        let (target, batch) = {
            let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            while p.waiting.is_empty() && !p.closed {
                p = shared.pending_cv.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.waiting.is_empty() && p.closed {
                return;
            }
            (p.written, std::mem::take(&mut p.waiting))
        };
        let result = if shared.failed.load(Ordering::SeqCst) {
            Err("an earlier write failed".to_string())
        } else {
            file.sync_data()
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        match &result {
            Ok(()) => shared.set_durable(target),
            Err(e) => shared.fail(e),
        }
        for (_, done) in batch {
            done(result.clone().map_err(StoreError::WriterFailed));
        }
    }
}

/// Reads frames by offset, and in order up to what is durable.
pub struct LogReader {
    file: File,
    path: PathBuf,
    /// The writer's state when the log is open in this process; `None` for a log file read
    /// on its own, whose end is bounded by its length and a complete last frame.
    live: Option<Arc<Shared>>,
}

/// Bytes read at a time when reading in order.
const CHUNK: usize = MAX_FRAME + HEADER;

impl LogReader {
    /// A reader of a log file that this process does not write (another process may be
    /// appending to it: a frame becomes visible once it is complete and its checksum holds).
    pub fn open_file(path: &Path) -> Result<LogReader, StoreError> {
        let file = File::open(path).map_err(io_err(path))?;
        Ok(LogReader {
            file,
            path: path.to_path_buf(),
            live: None,
        })
    }

    /// The offset below which every frame is durable.
    pub fn durable(&self) -> Result<u64, StoreError> {
        match &self.live {
            Some(sh) => {
                if sh.failed.load(Ordering::SeqCst) {
                    return Err(StoreError::WriterFailed("a write failed".into()));
                }
                Ok(*sh.durable.lock().unwrap_or_else(|e| e.into_inner()))
            }
            None => Ok(self.file.metadata().map_err(io_err(&self.path))?.len()),
        }
    }

    /// Blocks until everything before `offset` is durable (or the log failed).
    pub fn wait_durable(&self, offset: u64) -> Result<(), StoreError> {
        match &self.live {
            Some(sh) => sh.wait_for(offset),
            None => {
                while self.durable()? < offset {
                    self.wait_beyond(offset - 1, std::time::Duration::from_secs(1))?;
                }
                Ok(())
            }
        }
    }

    /// Waits up to `timeout` for the durable end to pass `offset`; returns the durable end.
    pub fn wait_beyond(
        &self,
        offset: u64,
        timeout: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let deadline = std::time::Instant::now() + timeout;
        match &self.live {
            Some(sh) => {
                let mut d = sh.durable.lock().unwrap_or_else(|e| e.into_inner());
                while *d <= offset {
                    if sh.failed.load(Ordering::SeqCst) {
                        return Err(StoreError::WriterFailed("a write failed".into()));
                    }
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    d = sh
                        .durable_cv
                        .wait_timeout(d, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                Ok(*d)
            }
            None => loop {
                let end = self.durable()?;
                let now = std::time::Instant::now();
                if end > offset || now >= deadline {
                    return Ok(end);
                }
                std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(5)));
            },
        }
    }

    /// The durable frames from `offset` on, at most `max` of them (fewer at the durable end).
    /// `offset` must be where a frame starts: the log's start or an offset a frame was read
    /// at or ends at. A frame that is not complete yet ends the batch; a bad frame with
    /// complete frames after it is corruption.
    pub fn read_from(&self, offset: u64, max: usize) -> Result<Vec<Frame>, StoreError> {
        let end = self.durable()?;
        let mut out = Vec::new();
        let mut at = offset;
        let mut buf = Vec::new();
        while at < end && out.len() < max {
            let want = ((end - at) as usize).min(CHUNK);
            buf.resize(want, 0);
            self.file
                .read_exact_at(&mut buf, at)
                .map_err(io_err(&self.path))?;
            let mut pos = 0usize;
            while out.len() < max && want - pos > HEADER {
                let head = &buf[pos..pos + HEADER];
                let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
                let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                if len == 0 || len > MAX_FRAME {
                    return Err(StoreError::Corrupt {
                        offset: at + pos as u64,
                        why: "frame length out of range",
                    });
                }
                if pos + HEADER + len > want {
                    break;
                }
                let body = &buf[pos + HEADER..pos + HEADER + len];
                if crc32fast::hash(body) != crc {
                    if self.live.is_none() && at + (pos + HEADER + len) as u64 == end {
                        break; // another process is still writing it
                    }
                    return Err(StoreError::Corrupt {
                        offset: at + pos as u64,
                        why: "checksum mismatch",
                    });
                }
                out.push(Frame {
                    offset: at + pos as u64,
                    kind: body[0],
                    payload: body[1..].to_vec(),
                });
                pos += HEADER + len;
            }
            if pos == 0 {
                break; // the next frame is not complete yet
            }
            at += pos as u64;
        }
        Ok(out)
    }

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
    use std::fs::OpenOptions;
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
        let (mut log, _) =
            EventLog::open(&p, Durability::Write { sync_every_ms: 5 }, 0, |_| Ok(())).unwrap();
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
