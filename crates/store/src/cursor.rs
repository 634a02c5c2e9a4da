//! Consumer cursors in files: `consumers/NAME.cursor` in the data directory holds the offset
//! the consumer reads next and its checksum, replaced atomically (temporary file, fsync,
//! rename, fsync of the directory), so a crash leaves the old position or the new one.

use crate::{CursorStore, StoreError, io_err};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct FileCursors {
    dir: PathBuf,
}

impl FileCursors {
    /// Cursors kept under `data_dir/consumers`.
    pub fn open(data_dir: &Path) -> Result<FileCursors, StoreError> {
        let dir = data_dir.join("consumers");
        crate::private::create_dir(&dir).map_err(io_err(&dir))?;
        Ok(FileCursors { dir })
    }

    fn path(&self, consumer: &str) -> Result<PathBuf, StoreError> {
        let ok = !consumer.is_empty()
            && consumer.len() <= 64
            && consumer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !consumer.starts_with('.');
        if !ok {
            return Err(StoreError::BadName(consumer.to_owned()));
        }
        Ok(self.dir.join(format!("{consumer}.cursor")))
    }
}

impl CursorStore for FileCursors {
    fn load(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(consumer)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let bad = || StoreError::BadCursor(path.display().to_string());
        let (off, crc) = text.trim().split_once(' ').ok_or_else(bad)?;
        let offset: u64 = off.parse().map_err(|_| bad())?;
        let crc: u32 = crc.parse().map_err(|_| bad())?;
        if crc32fast::hash(off.as_bytes()) != crc {
            return Err(bad());
        }
        Ok(Some(offset))
    }

    fn save(&self, consumer: &str, offset: u64) -> Result<(), StoreError> {
        let path = self.path(consumer)?;
        let tmp = path.with_extension("tmp");
        let off = offset.to_string();
        let text = format!("{off} {}\n", crc32fast::hash(off.as_bytes()));
        let mut f = crate::private::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_data().map_err(io_err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_reopening_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCursors::open(dir.path()).unwrap();
        assert_eq!(c.load("alerts").unwrap(), None);
        c.save("alerts", 4096).unwrap();
        c.save("alerts", 8192).unwrap();
        let c = FileCursors::open(dir.path()).unwrap();
        assert_eq!(c.load("alerts").unwrap(), Some(8192));
        assert!(c.save("../etc", 1).is_err());
        std::fs::write(dir.path().join("consumers/alerts.cursor"), "9192 1\n").unwrap();
        assert!(matches!(c.load("alerts"), Err(StoreError::BadCursor(_))));
    }
}
