//! The data directory lock: two servers must never write the same xlogs and snapshots.
//!
//! Owned by the TX thread, taken once by the first `box.cfg{}` and held until the process
//! ends (the kernel drops an flock with the last descriptor, so a crash frees it too).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::BoxError;

/// The lock file's name in each data directory.
pub const LOCK_FILE: &str = "tarantula.lock";

/// Lock `dir` for this process, or fail naming the directory. The lock lasts as long as
/// the returned file is open.
pub fn lock_dir(dir: &Path) -> Result<File, BoxError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| BoxError::system(&format!("can't open {}", path.display()), &err))?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let err = std::io::Error::last_os_error();
        return Err(BoxError::system(
            &format!(
                "can't lock the data directory '{}': another server uses it",
                dir.display()
            ),
            &err,
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_until_the_first_is_gone() {
        let dir = std::env::temp_dir().join(format!("tarantula-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = lock_dir(&dir).unwrap();
        let err = lock_dir(&dir).unwrap_err();
        assert!(
            err.message.contains("another server uses it"),
            "{}",
            err.message
        );
        drop(first);
        lock_dir(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
