//! Snapshots: the engine state as bytes, with the log offset it covers, written atomically
//! (temporary file, fsync, rename, fsync of the directory) and checked when read.
//!
//! A snapshot is a chain of segments in `snapshots/` (see `cardguard_engine::segment`): each
//! file is named by its number in the chain and its header gives the log offset it covers,
//! the offset of the segment before it and which slices of the state it holds whole. The
//! single-file `snapshot.bin` of earlier versions is still read when there is no chain.

use crate::{StoreError, io_err};
use std::fs::File;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CGSNAP01";
const NAME: &str = "snapshot.bin";

/// Writes `body` as the snapshot covering the log up to `log_offset`.
pub fn write_snapshot(dir: &Path, log_offset: u64, body: &[u8]) -> Result<(), StoreError> {
    write_snapshot_with(dir, log_offset, |w| w.write_all(body)).map(|_| ())
}

/// Counts and checksums what passes through it.
struct Summing<W> {
    inner: W,
    len: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.len += n as u64;
        self.crc.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes written between two waits for writeback.
const TRICKLE: u64 = 4 << 20;

/// A file written through with its data sent to the disk every `TRICKLE` bytes and waited
/// for, so that the final fsync has little left to do. On ext4 (data=ordered) a journal
/// commit waits for the data of the files in it: a large file made durable in one fsync
/// stalls the event log's own appends for as long as that data takes to write.
struct Trickle<'a> {
    file: &'a File,
    written: u64,
    synced: u64,
}

impl Write for Trickle<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.file).write(b)?;
        self.written += n as u64;
        if self.written - self.synced >= TRICKLE {
            use std::os::fd::AsRawFd;
            let (from, len) = (self.synced as i64, (self.written - self.synced) as i64);
            // SAFETY: sync_file_range reads no memory of ours; the fd is open for writing.
            let r = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    from,
                    len,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            self.synced = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the snapshot covering the log up to `log_offset` with its body streamed by
/// `body` (nothing of it is held in memory whole); the header's length and checksum are
/// filled in after. Returns the body's length.
pub fn write_snapshot_with(
    dir: &Path,
    log_offset: u64,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<u64, StoreError> {
    let head = |len: u64, crc: u32| {
        let mut head = Vec::with_capacity(28);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&log_offset.to_le_bytes());
        head.extend_from_slice(&len.to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
        head
    };
    write_atomic(
        &dir.join("snapshot.bin.tmp"),
        &dir.join(NAME),
        28,
        head,
        body,
    )
}

/// Writes `dst` through `tmp`: `head_len` bytes of header made by `head` from the body's
/// length and checksum once the body is written, then fsync, rename, fsync of the directory.
fn write_atomic(
    tmp: &Path,
    dst: &Path,
    head_len: usize,
    head: impl FnOnce(u64, u32) -> Vec<u8>,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<u64, StoreError> {
    use std::os::unix::fs::FileExt;
    let dir = dst.parent().unwrap_or(Path::new("."));
    let f = crate::private::create(tmp).map_err(io_err(tmp))?;
    let mut file = Trickle {
        file: &f,
        written: 0,
        synced: 0,
    };
    // The body's many small writes (an encoder's, a field at a time) gather in the buffer;
    // the length and checksum are taken of its megabyte writes (a checksum of a few bytes
    // at a time took several times as long as one of a large slice).
    let written = file.write_all(&vec![0u8; head_len]).and_then(|()| {
        let mut w = std::io::BufWriter::with_capacity(
            1 << 20,
            Summing {
                inner: &mut file,
                len: 0,
                crc: crc32fast::Hasher::new(),
            },
        );
        body(&mut w)?;
        let sums = w.into_inner().map_err(|e| e.into_error())?;
        Ok((sums.len, sums.crc.finalize()))
    });
    let (len, crc) = match written {
        Ok(sums) => sums,
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            return Err(io_err(tmp)(e));
        }
    };
    if let Err(e) = f
        .write_all_at(&head(len, crc), 0)
        .and_then(|()| f.sync_all())
    {
        drop(f);
        let _ = std::fs::remove_file(tmp);
        return Err(io_err(tmp)(e));
    }
    drop(f);
    if let Err(e) = std::fs::rename(tmp, dst) {
        let _ = std::fs::remove_file(tmp);
        return Err(io_err(dst)(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(len)
}

/// The log offset the snapshot covers (the newest segment's, or the single file's), from
/// headers alone (no body is read or checked), if there is a snapshot.
pub fn snapshot_offset(dir: &Path) -> Result<Option<u64>, StoreError> {
    if let Some(last) = segment_chain(&list_segments(dir)?).last() {
        return Ok(Some(last.offset));
    }
    let path = dir.join(NAME);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut head = [0u8; 28];
    use std::os::unix::fs::FileExt;
    if f.read_exact_at(&mut head, 0).is_err() || &head[..8] != MAGIC {
        return Err(StoreError::BadSnapshot {
            path: path.display().to_string(),
            why: "not a cardguard snapshot",
        });
    }
    Ok(Some(u64::from_le_bytes(
        head[8..16].try_into().unwrap_or([0; 8]),
    )))
}

/// Reads the snapshot, if there is one: the log offset it covers and its body.
pub fn read_snapshot(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let path = dir.join(NAME);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut all = Vec::new();
    f.read_to_end(&mut all).map_err(io_err(&path))?;
    let bad = |why| StoreError::BadSnapshot {
        path: path.display().to_string(),
        why,
    };
    if all.len() < 28 || &all[..8] != MAGIC {
        return Err(bad("not a cardguard snapshot"));
    }
    let word = |r: std::ops::Range<usize>| u64::from_le_bytes(all[r].try_into().unwrap_or([0; 8]));
    let offset = word(8..16);
    let len = word(16..24) as usize;
    let crc = u32::from_le_bytes(all[24..28].try_into().unwrap_or([0; 4]));
    if all.len() != 28 + len {
        return Err(bad("length does not match"));
    }
    if crc32fast::hash(&all[28..]) != crc {
        return Err(bad("checksum mismatch"));
    }
    all.drain(..28);
    Ok(Some((offset, all)))
}

const SEG_MAGIC: &[u8; 8] = b"CGSEG001";
const SEG_HEAD: usize = 52;
/// The directory of the segments, in the data directory.
pub const SEGMENTS: &str = "snapshots";
/// `prev` of a segment that starts a chain.
const NO_PREV: u64 = u64::MAX;

/// A segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHead {
    /// Its number in the chain.
    pub seq: u64,
    /// The log offset it covers.
    pub offset: u64,
    /// The offset the segment before it covers; `None` for the first of a chain.
    pub prev: Option<u64>,
    /// The slices of the state it holds whole.
    pub slices: Range<u32>,
    len: u64,
    crc: u32,
    path: PathBuf,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(SEGMENTS).join(format!("{seq:020}.seg"))
}

/// Writes segment `seq` of the chain, covering the log up to `log_offset`, after the one
/// covering `prev` (`None` to start a chain), holding `slices` whole; its body streamed
/// by `body`. Returns the body's length.
pub fn write_segment(
    dir: &Path,
    seq: u64,
    log_offset: u64,
    prev: Option<u64>,
    slices: Range<u32>,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<u64, StoreError> {
    let sdir = dir.join(SEGMENTS);
    if !sdir.exists() {
        crate::private::create_dir(&sdir).map_err(io_err(&sdir))?;
    }
    let head = |len: u64, crc: u32| {
        let mut h = Vec::with_capacity(SEG_HEAD);
        h.extend_from_slice(SEG_MAGIC);
        for w in [seq, log_offset, prev.unwrap_or(NO_PREV)] {
            h.extend_from_slice(&w.to_le_bytes());
        }
        h.extend_from_slice(&slices.start.to_le_bytes());
        h.extend_from_slice(&slices.end.to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&crc.to_le_bytes());
        h
    };
    write_atomic(
        &sdir.join("segment.tmp"),
        &segment_path(dir, seq),
        SEG_HEAD,
        head,
        body,
    )
}

/// The segments' headers, by number (no body is read). A file in `snapshots/` named like
/// a segment whose header is not one is an error.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentHead>, StoreError> {
    let sdir = dir.join(SEGMENTS);
    let entries = match std::fs::read_dir(&sdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&sdir)(e)),
    };
    let mut heads = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(&sdir))?.path();
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        heads.push(read_segment_head(&path)?);
    }
    heads.sort_by_key(|h| h.seq);
    Ok(heads)
}

fn read_segment_head(path: &Path) -> Result<SegmentHead, StoreError> {
    use std::os::unix::fs::FileExt;
    let bad = |why| StoreError::BadSnapshot {
        path: path.display().to_string(),
        why,
    };
    let f = File::open(path).map_err(io_err(path))?;
    let mut h = [0u8; SEG_HEAD];
    if f.read_exact_at(&mut h, 0).is_err() || &h[..8] != SEG_MAGIC {
        return Err(bad("not a cardguard snapshot segment"));
    }
    let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap_or([0; 4]));
    let prev = word(24);
    Ok(SegmentHead {
        seq: word(8),
        offset: word(16),
        prev: (prev != NO_PREV).then_some(prev),
        slices: half(32)..half(36),
        len: word(40),
        crc: half(48),
        path: path.to_path_buf(),
    })
}

/// The newest run of segments that follow each other (consecutive numbers, each after the
/// offset of the one before), oldest first.
pub fn segment_chain(heads: &[SegmentHead]) -> &[SegmentHead] {
    let mut start = heads.len();
    while start > 1 {
        let (a, b) = (&heads[start - 2], &heads[start - 1]);
        if b.seq != a.seq + 1 || b.prev != Some(a.offset) {
            break;
        }
        start -= 1;
    }
    &heads[start.saturating_sub(1)..]
}

/// A segment's body, checked against its header's length and checksum.
pub fn read_segment(head: &SegmentHead) -> Result<Vec<u8>, StoreError> {
    let path = &head.path;
    let bad = |why| StoreError::BadSnapshot {
        path: path.display().to_string(),
        why,
    };
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(io_err(path))?;
    let size = f.metadata().map_err(io_err(path))?.len();
    if size != SEG_HEAD as u64 + head.len {
        return Err(bad("length does not match"));
    }
    // The body alone, read into place (a segment can be the whole state: hundreds of MB).
    let mut body = Vec::with_capacity(head.len as usize);
    f.seek(SeekFrom::Start(SEG_HEAD as u64))
        .and_then(|_| f.read_to_end(&mut body))
        .map_err(io_err(path))?;
    if body.len() as u64 != head.len {
        return Err(bad("length does not match"));
    }
    if crc32fast::hash(&body) != head.crc {
        return Err(bad("checksum mismatch"));
    }
    Ok(body)
}

/// Removes the segments numbered before `seq` (no longer needed once a later one is
/// written) and the single-file snapshot of earlier versions.
pub fn remove_segments_before(dir: &Path, seq: u64) -> Result<(), StoreError> {
    for h in list_segments(dir)? {
        if h.seq < seq {
            std::fs::remove_file(&h.path).map_err(io_err(&h.path))?;
        }
    }
    match std::fs::remove_file(dir.join(NAME)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&dir.join(NAME))(e)),
        _ => Ok(()),
    }
}

/// Removes every snapshot (the segments and the single file): the next start replays the
/// whole log.
pub fn remove_snapshots(dir: &Path) -> Result<(), StoreError> {
    remove_segments_before(dir, u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_chain_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(list_segments(d).unwrap().is_empty());
        assert_eq!(snapshot_offset(d).unwrap(), None);
        write_snapshot(d, 5, b"old single file").unwrap();
        assert_eq!(snapshot_offset(d).unwrap(), Some(5));
        write_segment(d, 7, 100, None, 0..16, |w| w.write_all(b"full")).unwrap();
        write_segment(d, 8, 200, Some(100), 0..1, |w| w.write_all(b"one")).unwrap();
        write_segment(d, 9, 300, Some(200), 1..2, |w| w.write_all(b"two")).unwrap();
        let heads = list_segments(d).unwrap();
        assert_eq!(heads.len(), 3);
        assert_eq!(snapshot_offset(d).unwrap(), Some(300));
        let chain = segment_chain(&heads);
        assert_eq!(chain.iter().map(|h| h.seq).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!((chain[0].prev, chain[0].slices.clone()), (None, 0..16));
        assert_eq!(read_segment(&chain[1]).unwrap(), b"one");
        // A segment that does not follow (another offset before it) starts the chain anew.
        write_segment(d, 10, 400, Some(250), 2..3, |w| w.write_all(b"three")).unwrap();
        let heads = list_segments(d).unwrap();
        assert_eq!(segment_chain(&heads).len(), 1);
        assert_eq!(segment_chain(&[]).len(), 0);
        // Damage to a body is found; the segments before a number go, the old file too.
        let p = segment_path(d, 9);
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            read_segment(&list_segments(d).unwrap()[2]),
            Err(StoreError::BadSnapshot { .. })
        ));
        remove_segments_before(d, 9).unwrap();
        assert_eq!(
            list_segments(d)
                .unwrap()
                .iter()
                .map(|h| h.seq)
                .collect::<Vec<_>>(),
            [9, 10]
        );
        assert!(!d.join(NAME).exists());
        std::fs::write(d.join(SEGMENTS).join("junk.seg"), b"x").unwrap();
        assert!(list_segments(d).is_err());
        std::fs::remove_file(d.join(SEGMENTS).join("junk.seg")).unwrap();
        remove_snapshots(d).unwrap();
        assert_eq!(snapshot_offset(d).unwrap(), None);
    }

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_snapshot(dir.path()).unwrap().is_none());
        write_snapshot(dir.path(), 1234, b"state bytes").unwrap();
        assert_eq!(
            read_snapshot(dir.path()).unwrap(),
            Some((1234, b"state bytes".to_vec()))
        );
        let n = write_snapshot_with(dir.path(), 99, |w| {
            w.write_all(b"ne")?;
            w.write_all(b"wer")
        })
        .unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            read_snapshot(dir.path()).unwrap(),
            Some((99, b"newer".to_vec()))
        );
        // A body that fails leaves the snapshot in place and no temporary file.
        assert!(
            write_snapshot_with(dir.path(), 200, |_| Err(std::io::Error::other("full"))).is_err()
        );
        assert!(!dir.path().join("snapshot.bin.tmp").exists());
        assert_eq!(read_snapshot(dir.path()).unwrap().unwrap().0, 99);
        let p = dir.path().join(NAME);
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            read_snapshot(dir.path()),
            Err(StoreError::BadSnapshot { .. })
        ));
    }
}
