//! The data directory is its owner's alone: it is created 0700 and every file in it 0600,
//! whatever the umask (a umask only takes permissions away). The card database holds expiry
//! dates, last fours, PIN verification values and contacts; the log holds device addresses.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Open options that create a file readable and writable by its owner only.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// A new file (truncated if it exists) for writing, owner only.
pub fn create(path: &Path) -> std::io::Result<std::fs::File> {
    options().write(true).create(true).truncate(true).open(path)
}

/// Creates the directory (and its missing parents) with mode 0700.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// The permission bits of `path` when others than its owner may read, write or enter it.
pub fn open_to_others(path: &Path) -> std::io::Result<Option<u32>> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_hold_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir(&d).unwrap();
        create(&d.join("f")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), DIR_MODE);
        assert_eq!(mode(&d.join("f")), FILE_MODE);
        assert_eq!(open_to_others(&d).unwrap(), None);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(open_to_others(&d).unwrap(), Some(0o755));
    }
}
