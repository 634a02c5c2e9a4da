//! The data directory's lock: one process at a time works on a data directory. A second
//! server on the same directory would hand out the same authorization numbers and interleave
//! its frames with the first's; a repair under a live server would rewrite what it reads.
//! The lock is an exclusive `flock` on `LOCK` (as PostgreSQL, etcd and Kafka lock theirs),
//! which holds the holder's process id; the kernel releases it when the process ends, however
//! it ends.

use crate::{StoreError, io_err};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The name of the lock file in a data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Holds a data directory's lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = crate::private::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    dir: dir.display().to_string(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_err(&path))?;
        Ok(DirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        match DirLock::acquire(dir.path()) {
            Err(StoreError::Locked { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string());
            }
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }
}
