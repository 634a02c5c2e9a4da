//! The event log: one append-only file of checksummed frames.
//!
//! Frame: `len: u32 LE` (of kind + payload), `crc32: u32 LE` (of kind + payload), `kind: u8`,
//! `payload`. The appender writes each frame to the file at once (under the caller's lock,
//! so the file's order is the caller's order); a syncer thread makes every frame written so
//! far durable with one `fdatasync` (group commit) and then calls their completions. The
//! caller answers its client from that completion, so an answered request is always in the
//! log.
//!
//! At open the frames after the snapshot's offset are checked. A torn tail is only ever the
//! last, incomplete write: a short last frame, a last frame failing its checksum or a
//! zero-filled tail, with no valid frame anywhere after it; it is cut off. A bad frame with a
//! valid frame somewhere after it (a changed length that makes a middle frame look like it
//! runs past the end included) is damage and refuses to open, naming the offset. [`verify`]
//! checks a range without replaying it (the frames a snapshot covers, or a whole log), and
//! [`repair`] sets damaged spans aside: their bytes go to a file of their own and, in the
//! log, a frame of kind [`KIND_SET_ASIDE`] of the same length takes their place, so that
//! every offset (a snapshot's, the authorization index's) stays where it was.

use crate::{StoreError, io_err};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

const HEADER: usize = 8;
/// Largest frame accepted (kind + payload).
pub const MAX_FRAME: usize = 1 << 20;
/// The kind of a frame that stands where [`repair`] set damaged bytes aside: replays and
/// readers pass over it.
pub const KIND_SET_ASIDE: u8 = 0;

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

/// The frame at `at` if one starts there: its length is in range, it ends by `end` and
/// its checksum holds. Returns its kind + payload length.
fn frame_at(file: &File, at: u64, end: u64) -> std::io::Result<Option<usize>> {
    let mut head = [0u8; HEADER];
    if at + HEADER as u64 >= end {
        return Ok(None);
    }
    file.read_exact_at(&mut head, at)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_FRAME || at + (HEADER + len) as u64 > end {
        return Ok(None);
    }
    let mut body = vec![0u8; len];
    file.read_exact_at(&mut body, at + HEADER as u64)?;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    Ok((crc32fast::hash(&body) == crc).then_some(len))
}

/// The first offset in `from..end` where a valid frame starts, if any. Candidates are found
/// by their length field (a frame's length has zero high bytes, which the JSON of a payload
/// never has), so a search through a long stretch reads it once and checks few checksums.
pub fn next_valid_frame(file: &File, from: u64, end: u64) -> std::io::Result<Option<u64>> {
    const WINDOW: usize = 4 << 20;
    let mut buf = vec![0u8; WINDOW + HEADER];
    let mut base = from;
    while (base + HEADER as u64) < end {
        let n = ((end - base) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], base)?;
        let last = n.saturating_sub(HEADER);
        for i in 0..last.min(WINDOW) {
            let len = u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]) as usize;
            if len != 0 && len <= MAX_FRAME && frame_at(file, base + i as u64, end)?.is_some() {
                return Ok(Some(base + i as u64));
            }
        }
        base += last.min(WINDOW) as u64;
        if last == 0 {
            break;
        }
    }
    Ok(None)
}

/// Where a frame is damaged, and where the next valid frame after it starts.
fn damaged(file: &File, path: &Path, at: u64, end: u64, why: &'static str) -> StoreError {
    match next_valid_frame(file, at + 1, end) {
        Ok(Some(next)) => StoreError::Damaged {
            offset: at,
            next,
            why,
        },
        Ok(None) => StoreError::Corrupt { offset: at, why },
        Err(e) => io_err(path)(e),
    }
}

/// Reads frames from `from` up to `end`, handing each to `replay` (set-aside ones too).
/// Returns the offset where the valid frames end and how many there were; a torn tail after
/// that offset (nothing valid after it) is for the caller to cut. A bad frame with a valid
/// frame after it is [`StoreError::Damaged`].
fn scan(
    file: &File,
    path: &Path,
    from: u64,
    end: u64,
    replay: &mut impl FnMut(Frame) -> Result<(), StoreError>,
) -> Result<(u64, u64), StoreError> {
    use std::io::{BufReader, Seek, SeekFrom};
    let mut r = BufReader::with_capacity(1 << 20, file);
    r.seek(SeekFrom::Start(from)).map_err(io_err(path))?;
    let mut at = from;
    let mut frames = 0u64;
    let mut head = [0u8; HEADER];
    // A frame that does not check out is a torn tail only if nothing valid follows it.
    let torn_or_damaged = |at: u64, why: &'static str| -> Result<(), StoreError> {
        match damaged(file, path, at, end, why) {
            e @ StoreError::Damaged { .. } => Err(e),
            StoreError::Corrupt { .. } => Ok(()),
            e => Err(e),
        }
    };
    while at < end {
        let remaining = end - at;
        if remaining < (HEADER + 1) as u64 {
            torn_or_damaged(at, "a frame shorter than its header")?;
            break;
        }
        r.read_exact(&mut head).map_err(io_err(path))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        // A zero-filled tail (the file grew, the data never came) is torn, like any bad
        // frame with nothing valid after it.
        let why = if len == 0 || len > MAX_FRAME {
            Some("frame length out of range")
        } else if (HEADER + len) as u64 > remaining {
            Some("the frame runs past the end")
        } else {
            None
        };
        if let Some(why) = why {
            torn_or_damaged(at, why)?;
            break;
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(io_err(path))?;
        if crc32fast::hash(&body) != crc {
            torn_or_damaged(at, "checksum mismatch")?;
            break;
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

/// What [`verify`] found in a range of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Valid frames (set-aside ones included).
    pub frames: u64,
    /// Where the valid frames end.
    pub end: u64,
    /// Bytes after `end` that are a torn tail (a start cuts them).
    pub torn: u64,
}

/// Checks every frame of `path` in `from..to` (the end of the file if `None`) without
/// replaying it, handing each to `visit` (set-aside frames too). A damaged frame is an error; a torn tail is
/// reported. Checking the frames a snapshot covers, `to` is the snapshot's offset, and the
/// frames must end exactly there.
pub fn verify(
    path: &Path,
    from: u64,
    to: Option<u64>,
    mut visit: impl FnMut(Frame) -> Result<(), StoreError>,
) -> Result<VerifyReport, StoreError> {
    let file = open_for_reading(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let end = to.unwrap_or(len).min(len);
    let (at, frames) = scan(&file, path, from, end, &mut visit)?;
    if to.is_some() && at != end {
        return Err(StoreError::Corrupt {
            offset: at,
            why: "the frames do not end where the snapshot says the log it covers ends",
        });
    }
    Ok(VerifyReport {
        frames,
        end: at,
        torn: end - at,
    })
}

/// One span that [`repair`] set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub offset: u64,
    pub len: u64,
    /// Where its bytes were saved.
    pub saved_to: PathBuf,
    /// What was wrong at its start.
    pub why: &'static str,
}

/// Sets every damaged span of the log aside: its bytes are saved to
/// `events.log.damaged-OFFSET` beside the log and replaced in place by a set-aside frame of
/// the same length; a torn tail is saved the same way and cut. Every valid frame stays
/// where it was. Run it only on a log no server has open.
pub fn repair(path: &Path) -> Result<(Vec<SetAside>, VerifyReport), StoreError> {
    let file = crate::private::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut spans = Vec::new();
    let mut from = 0u64;
    let mut frames = 0u64;
    let save = |offset: u64, end: u64| -> Result<PathBuf, StoreError> {
        let mut bytes = vec![0u8; (end - offset) as usize];
        file.read_exact_at(&mut bytes, offset)
            .map_err(io_err(path))?;
        let to = path.with_file_name(format!(
            "{}.damaged-{offset}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("events.log")
        ));
        let mut f = crate::private::create(&to).map_err(io_err(&to))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&to))?;
        Ok(to)
    };
    loop {
        // Counted as they are read: a pass that stops at damage counts the frames before it.
        let mut seen = 0u64;
        let pass = scan(&file, path, from, len, &mut |_| {
            seen += 1;
            Ok(())
        });
        frames += seen;
        match pass {
            Ok((at, _)) => {
                if at < len {
                    let saved_to = save(at, len)?;
                    file.set_len(at).map_err(io_err(path))?;
                    spans.push(SetAside {
                        offset: at,
                        len: len - at,
                        saved_to,
                        why: "torn tail",
                    });
                }
                file.sync_all().map_err(io_err(path))?;
                let end = at;
                return Ok((
                    spans,
                    VerifyReport {
                        frames,
                        end,
                        torn: 0,
                    },
                ));
            }
            Err(StoreError::Damaged { offset, next, why }) => {
                // A set-aside frame needs a header and its kind byte: a span too short for
                // one takes in the next frame too.
                let mut next = next;
                while next - offset < (HEADER + 1) as u64 {
                    next = match next_valid_frame(&file, next + 1, len).map_err(io_err(path))? {
                        Some(n) => n,
                        None => len,
                    };
                }
                let saved_to = save(offset, next)?;
                // As many set-aside frames as a long span needs (each at most MAX_FRAME, and
                // none shorter than a header and its kind byte).
                let mut at = offset;
                while at < next {
                    let mut take = (next - at).min((HEADER + MAX_FRAME) as u64);
                    let rest = next - at - take;
                    if rest > 0 && rest < (HEADER + 1) as u64 {
                        take -= (HEADER + 1) as u64;
                    }
                    let mut body = vec![0u8; take as usize - HEADER];
                    body[0] = KIND_SET_ASIDE;
                    let mut frame = Vec::with_capacity(take as usize);
                    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
                    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
                    frame.extend_from_slice(&body);
                    file.write_all_at(&frame, at).map_err(io_err(path))?;
                    at += take;
                }
                spans.push(SetAside {
                    offset,
                    len: next - offset,
                    saved_to,
                    why,
                });
                from = next;
            }
            Err(e) => return Err(e),
        }
    }
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

/// How long a reader waiting for the durable end sleeps at most before it looks again (a
/// wake-up can be missed: see `Shared::waiting`).
const RECHECK: std::time::Duration = std::time::Duration::from_millis(5);

struct Shared {
    /// Bytes that are durable: synced under `Durability::Sync`, written otherwise. Moved
    /// on without a lock: the syncer never waits for a lock that a reader at low priority
    /// (a consumer, the snapshot writer: `SCHED_IDLE`, nice 19) may hold, which on a busy
    /// machine is not run again for as long as the cores are busy.
    durable: AtomicU64,
    /// Readers waiting for the durable end sleep on this; the syncer wakes them without
    /// taking `waiting`, so a wake-up between a reader's look and its sleep is missed and
    /// the reader looks again after [`RECHECK`].
    waiting: Mutex<()>,
    durable_cv: Condvar,
    failed: AtomicBool,
    /// Why the writer failed, and whether it can go on once the cause is gone.
    failure: Mutex<Option<WriterFailure>>,
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
        let mut set_aside = 0u64;
        let (at, frames) = scan(&file, path, replay_from, file_len, &mut |f: Frame| {
            if f.kind == KIND_SET_ASIDE {
                set_aside += 1;
                Ok(())
            } else {
                replay(f)
            }
        })?;
        let frames = frames - set_aside;
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
            durable: AtomicU64::new(at),
            waiting: Mutex::new(()),
            durable_cv: Condvar::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
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

    /// Why the writer stopped taking appends, if it did.
    pub fn failure(&self) -> Option<WriterFailure> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a failed write (a full disk, a file size limit), cuts what the failed write
    /// left past the last whole frame and takes appends again. Nothing after that frame was
    /// answered, so nothing answered is lost. A failed sync cannot be taken back (the
    /// kernel may have dropped written pages): that needs a restart, which checks the log.
    pub fn recover(&mut self) -> Result<(), StoreError> {
        match self.failure() {
            None => Ok(()),
            Some(f) if f.restart_needed => Err(StoreError::WriterFailed(f.why)),
            Some(_) => {
                self.file
                    .set_len(self.next_offset)
                    .map_err(io_err(&self.path))?;
                *self
                    .shared
                    .failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                self.shared.failed.store(false, Ordering::SeqCst);
                tracing::info!(offset = self.next_offset, "event log writer recovered");
                Ok(())
            }
        }
    }

    /// A reader of this log: frames at known offsets (idempotent answers, labels) and the
    /// durable frames in order (consumers), bounded by what is durable.
    pub fn reader(&self) -> Result<LogReader, StoreError> {
        let f = open_for_reading(&self.path).map_err(io_err(&self.path))?;
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
        self.durable.fetch_max(end, Ordering::SeqCst);
        self.durable_cv.notify_all();
    }

    /// Blocks until everything before `offset` is durable, or the log failed.
    fn wait_for(&self, offset: u64) -> Result<(), StoreError> {
        self.wait_until(|d| d >= offset, None).map(|_| ())
    }

    /// Blocks until `done(durable end)` or `deadline`; returns the durable end.
    fn wait_until(
        &self,
        done: impl Fn(u64) -> bool,
        deadline: Option<std::time::Instant>,
    ) -> Result<u64, StoreError> {
        loop {
            // What is durable stays readable after a later write failed.
            let d = self.durable.load(Ordering::SeqCst);
            if done(d) {
                return Ok(d);
            }
            if self.failed.load(Ordering::SeqCst) {
                return Err(StoreError::WriterFailed("a write failed".into()));
            }
            let now = std::time::Instant::now();
            if deadline.is_some_and(|t| now >= t) {
                return Ok(d);
            }
            let nap = deadline.map_or(RECHECK, |t| (t - now).min(RECHECK));
            let g = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            // The end may have moved since the look above; the wake-up is then missed and
            // the nap bounds the wait.
            if done(self.durable.load(Ordering::SeqCst)) {
                continue;
            }
            drop(self.durable_cv.wait_timeout(g, nap));
        }
    }

    fn fail(&self, why: &str, restart_needed: bool) {
        tracing::error!(
            error = why,
            restart_needed,
            "event log write failed: refusing appends until it recovers"
        );
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        // A failure that needs a restart stays one.
        if !f.as_ref().is_some_and(|f| f.restart_needed) {
            *f = Some(WriterFailure {
                why: why.to_owned(),
                restart_needed,
            });
        }
        drop(f);
        self.failed.store(true, Ordering::SeqCst);
        self.durable_cv.notify_all();
    }
}

/// Why the event log writer stopped taking appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterFailure {
    pub why: String,
    /// A sync failed: only a restart (which checks the log) makes it write again. Otherwise
    /// a write failed and [`EventLog::recover`] takes appends again once the cause is gone.
    pub restart_needed: bool,
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
            // Once the cause of a failed write is gone, the next append goes through.
            log.recover()?;
        }
        log.buf.clear();
        encode_frame(kind, payload, &mut log.buf);
        let offset = log.next_offset;
        let end = offset + log.buf.len() as u64;
        if let Err(e) = (&log.file).write_all(&log.buf) {
            let why = format!("{}: {e}", log.path.display());
            log.shared.fail(&why, false);
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
                shared.fail(&format!("{}: {e}", path.display()), true);
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
        // Frames written before a failed write are whole: they are synced as usual.
        let result = file
            .sync_data()
            .map_err(|e| format!("{}: {e}", path.display()));
        match &result {
            Ok(()) => shared.set_durable(target),
            Err(e) => shared.fail(e, true),
        }
        for (_, done) in batch {
            done(result.clone().map_err(StoreError::WriterFailed));
        }
    }
}

/// Opens the log to read it without updating its access time (`O_NOATIME`, for the file's
/// owner; others open it plainly). The writer changes the file's modification time all the
/// time, so under `relatime` every read by a consumer also wrote the inode's access time
/// (dirtying the inode the appends also update, several times a second for nothing; no
/// change in the HTTP tail was measurable).
fn open_for_reading(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        r => r,
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
        let file = open_for_reading(path).map_err(io_err(path))?;
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
                Ok(sh.durable.load(Ordering::SeqCst))
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
            Some(sh) => sh.wait_until(|d| d > offset, Some(deadline)),
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

    #[test]
    fn the_durable_end_moves_while_a_reader_holds_its_lock() {
        let sh = Arc::new(Shared {
            durable: AtomicU64::new(0),
            waiting: Mutex::new(()),
            durable_cv: Condvar::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            pending_cv: Condvar::new(),
        });
        // A reader at low priority, preempted while it holds the lock readers wait under.
        let held = sh.waiting.lock().unwrap();
        let syncer = {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || sh.set_durable(100))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !syncer.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the syncer waited for the readers' lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(held);
        assert_eq!(sh.wait_until(|d| d >= 100, None).unwrap(), 100);
        // A reader waiting sees the end move (woken, or on its next look).
        let reader = {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || sh.wait_for(200))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        sh.set_durable(150);
        sh.set_durable(200);
        reader.join().unwrap().unwrap();
        // After a failed write, what was durable is still waited for without an error.
        sh.failed.store(true, Ordering::SeqCst);
        assert_eq!(sh.wait_until(|d| d >= 200, None).unwrap(), 200);
        assert!(sh.wait_for(201).is_err());
        sh.failed.store(false, Ordering::SeqCst);
        // A deadline ends a wait with the end as it is.
        let t0 = std::time::Instant::now();
        let soon = t0 + std::time::Duration::from_millis(30);
        assert_eq!(sh.wait_until(|d| d > 200, Some(soon)).unwrap(), 200);
        assert!(t0.elapsed() >= std::time::Duration::from_millis(30));
    }
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
    fn reading_the_log_leaves_its_access_time_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        append_all(&mut log, &[(1, b"a"), (1, b"b")]);
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(long_ago))
            .unwrap();
        // Modified after it was last read: `relatime` would write the access time on a read.
        append_all(&mut log, &[(1, b"c")]);
        let reader = log.reader().unwrap();
        assert_eq!(reader.read_from(0, 10).unwrap().len(), 3);
        assert_eq!(std::fs::metadata(&p).unwrap().accessed().unwrap(), long_ago);
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
            Err(StoreError::Damaged {
                offset: 0, next, ..
            }) => assert_eq!(next, 14),
            other => panic!("expected damage, got {other:?}"),
        }
        // The file was not truncated.
        assert!(std::fs::metadata(&p).unwrap().len() > 20);
    }

    #[test]
    fn a_changed_length_in_a_middle_frame_is_damage_and_repair_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8)
            .map(|i| format!("{{\"event\":{i}}}").into_bytes())
            .collect();
        let items: Vec<(u8, &[u8])> = payloads.iter().map(|p| (1u8, p.as_slice())).collect();
        let offs = append_all(&mut log, &items);
        drop(log);
        let len = std::fs::metadata(&p).unwrap().len();
        // The third byte of frame 3's length: the frame now seems to run past the end.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0x01], offs[3] + 2).unwrap();
        drop(f);
        match reopen(&p, 0) {
            Err(StoreError::Damaged { offset, next, .. }) => {
                assert_eq!((offset, next), (offs[3], offs[4]));
            }
            other => panic!("expected damage, got {other:?}"),
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), len, "nothing was cut");
        assert!(matches!(
            verify(&p, 0, None, |_| Ok(())),
            Err(StoreError::Damaged { .. })
        ));
        // Repair: the span is saved and replaced in place; every other frame stays put.
        let (spans, report) = repair(&p).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(
            (spans[0].offset, spans[0].len),
            (offs[3], offs[4] - offs[3])
        );
        let saved = std::fs::read(&spans[0].saved_to).unwrap();
        assert_eq!(&saved[HEADER + 1..], &payloads[3][..]);
        assert_eq!((report.frames, report.end), (9, len));
        let (frames, rep) = reopen(&p, 0).unwrap();
        assert_eq!((rep.frames, rep.truncated), (9, 0));
        let kept: Vec<u64> = frames.iter().map(|f| f.offset).collect();
        let mut want = offs.clone();
        want.remove(3);
        assert_eq!(kept, want);
        // A second repair finds nothing to do.
        assert!(repair(&p).unwrap().0.is_empty());
    }

    #[test]
    fn a_long_damaged_span_is_set_aside_in_frames_of_the_largest_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        let offs = append_all(&mut log, &[(1, b"before")]);
        let end = log.end_offset();
        drop(log);
        // Three megabytes of zeros (a hole a crash left), then a frame.
        let hole = 3 * MAX_FRAME as u64 + 5;
        let mut buf = Vec::new();
        encode_frame(1, b"after", &mut buf);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&buf, end + hole).unwrap();
        drop(f);
        assert!(matches!(
            EventLog::open(&p, Durability::Sync, 0, |_| Ok(())),
            Err(StoreError::Damaged { .. })
        ));
        let (spans, _) = repair(&p).unwrap();
        assert_eq!((spans.len(), spans[0].len), (1, hole));
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        append_all(&mut log, &[(1, b"later")]);
        drop(log);
        let (frames, _) = reopen(&p, 0).unwrap();
        let got: Vec<(u64, &[u8])> = frames.iter().map(|f| (f.offset, &f.payload[..])).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (offs[0], &b"before"[..]));
        assert_eq!(got[1], (end + hole, &b"after"[..]));
        assert_eq!(got[2].1, b"later");
    }

    #[test]
    fn verify_checks_a_prefix_up_to_a_frame_boundary_and_reports_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Sync, 0, |_| Ok(())).unwrap();
        let offs = append_all(&mut log, &[(1, b"a"), (1, b"bb"), (1, b"ccc")]);
        drop(log);
        let r = verify(&p, 0, Some(offs[2]), |_| Ok(())).unwrap();
        assert_eq!((r.frames, r.end), (2, offs[2]));
        assert!(verify(&p, 0, Some(offs[2] + 1), |_| Ok(())).is_err());
        // A flipped bit in the first payload: found by a prefix check.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"X", offs[0] + HEADER as u64 + 1).unwrap();
        drop(f);
        assert!(matches!(
            verify(&p, 0, Some(offs[2]), |_| Ok(())),
            Err(StoreError::Damaged { offset: 0, .. })
        ));
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"a", offs[0] + HEADER as u64 + 1).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 1).unwrap();
        drop(f);
        let r = verify(&p, 0, None, |_| Ok(())).unwrap();
        assert_eq!((r.frames, r.end, r.torn), (2, offs[2], len - 1 - offs[2]));
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
