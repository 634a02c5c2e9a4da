//! Snapshots: the engine state as bytes, with the log offset it covers, written atomically
//! (temporary file, fsync, rename, fsync of the directory) and checked when read.

use crate::{StoreError, io_err};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

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
    use std::os::unix::fs::FileExt;
    let tmp = dir.join("snapshot.bin.tmp");
    let dst = dir.join(NAME);
    let f = crate::private::create(&tmp).map_err(io_err(&tmp))?;
    let mut file = Trickle {
        file: &f,
        written: 0,
        synced: 0,
    };
    // The body's many small writes (an encoder's, a field at a time) gather in the buffer;
    // the length and checksum are taken of its megabyte writes (a checksum of a few bytes
    // at a time took several times as long as one of a large slice).
    let written = file.write_all(&[0u8; 28]).and_then(|()| {
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
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
    };
    let mut head = Vec::with_capacity(28);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&log_offset.to_le_bytes());
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&crc.to_le_bytes());
    if let Err(e) = f.write_all_at(&head, 0).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    drop(f);
    if let Err(e) = std::fs::rename(&tmp, &dst) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&dst)(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(len)
}

/// The log offset the snapshot covers, from its header alone (the body is not read or
/// checked), if there is a snapshot.
pub fn snapshot_offset(dir: &Path) -> Result<Option<u64>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
