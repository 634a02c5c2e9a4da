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
    let tmp = dir.join("snapshot.bin.tmp");
    let dst = dir.join(NAME);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut head = Vec::with_capacity(28);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&log_offset.to_le_bytes());
    head.extend_from_slice(&(body.len() as u64).to_le_bytes());
    head.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    f.write_all(&head).map_err(io_err(&tmp))?;
    f.write_all(body).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
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
        write_snapshot(dir.path(), 99, b"newer").unwrap();
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
