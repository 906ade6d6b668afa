//! Small filesystem helpers with the guarantees the daemon's files need.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` atomically: a temporary file in the same directory with `mode`,
/// synced, then renamed over the target. Readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, contents, mode, true)
}

/// [`write_atomic`] without the sync: readers still see the old file or the new one, but after
/// a crash the file may be empty. For markers that describe a running process.
pub fn write_atomic_unsynced(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, contents, mode, false)
}

fn replace(path: &Path, contents: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `contents` to `path` atomically (mode `mode`), creating its directory first with mode
/// 0700 if it is missing: for the daemon's private state files.
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    write_atomic(path, contents, mode)
}

/// The directories one call of [`create_private_dirs`] made, deepest first, each with the
/// device and inode it had then. Dropping it removes each in turn while it is still that
/// directory (not a link, not a directory put in its place) and empty, and stops at the first
/// that is not: what this process did not create, or what someone else still uses, stays.
#[must_use = "dropping it removes the directories again"]
#[derive(Debug)]
pub struct CreatedDirs(Vec<(PathBuf, u64, u64)>);

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for (path, dev, ino) in &self.0 {
            let same = std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.is_dir() && m.dev() == *dev && m.ino() == *ino);
            // `remove_dir` removes only an empty directory, and never what a link points at.
            if !same || std::fs::remove_dir(path).is_err() {
                return;
            }
        }
    }
}

/// Creates `dir` and its missing parents with mode 0700, one level at a time, and returns the
/// ones this call created; a level that another process creates meanwhile is not counted.
pub fn create_private_dirs(dir: &Path) -> std::io::Result<CreatedDirs> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() {
        match std::fs::symlink_metadata(at) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(at),
            Err(e) => return Err(e),
        }
        at = at.parent().unwrap_or(Path::new(""));
    }
    // Created top down, kept deepest first: on an error, dropping `created` removes what was
    // made so far.
    let mut created = CreatedDirs(Vec::new());
    for path in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {
                let meta = std::fs::symlink_metadata(path)?;
                created
                    .0
                    .insert(0, (path.to_owned(), meta.dev(), meta.ino()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// The largest file [`read_in_tree`] reads.
pub const TREE_FILE_LIMIT: u64 = 1 << 20;

/// Reads `rel` under `root` when it is a regular file reached without following a symbolic
/// link at any step below `root`, and at most [`TREE_FILE_LIMIT`] bytes. `Ok(None)` when it is
/// absent.
///
/// For files in a workspace the agent can write: a link planted there must not make the host
/// read (and hand to the next container) a file from outside the tree.
pub fn read_in_tree(root: &Path, rel: &Path) -> std::io::Result<Option<String>> {
    use std::io::{Error, ErrorKind, Read};
    let mut path = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let std::path::Component::Normal(part) = part else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "not a plain relative path",
            ));
        };
        path.push(part);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let last = i + 1 == parts.len();
        if meta.file_type().is_symlink() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is a symbolic link", path.display()),
            ));
        }
        if !last && !meta.is_dir() {
            return Ok(None);
        }
        if last && !meta.is_file() {
            // A FIFO would block the read; a device is never an instructions file.
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.len() > TREE_FILE_LIMIT {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is larger than {TREE_FILE_LIMIT} bytes", path.display()),
        ));
    }
    let mut text = String::new();
    file.take(TREE_FILE_LIMIT + 1).read_to_string(&mut text)?;
    Ok(Some(text))
}

/// The names of the regular files in `rel` under `root` (not followed through links, as
/// [`read_in_tree`]), sorted; empty when the directory is absent.
pub fn list_in_tree(root: &Path, rel: &Path) -> std::io::Result<Vec<String>> {
    use std::io::{Error, ErrorKind};
    let mut path = root.to_path_buf();
    for part in rel.components() {
        let std::path::Component::Normal(part) = part else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "not a plain relative path",
            ));
        };
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} is a symbolic link", path.display()),
                ))
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&path)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_dirs_go_again_deepest_first_and_only_those() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        let created = create_private_dirs(&deep).unwrap();
        assert_eq!(
            std::fs::metadata(&deep).unwrap().permissions().mode() & 0o777,
            0o700
        );
        drop(created);
        assert!(!root.path().join("a").exists());
        assert!(root.path().exists(), "what was there before stays");

        // Only the missing levels count; an existing one is never removed.
        std::fs::create_dir(root.path().join("a")).unwrap();
        drop(create_private_dirs(&deep).unwrap());
        assert!(root.path().join("a").is_dir());
        assert!(!root.path().join("a/b").exists());
        // Nothing was created: nothing is removed.
        std::fs::create_dir_all(&deep).unwrap();
        drop(create_private_dirs(&deep).unwrap());
        assert!(deep.is_dir());
    }

    #[test]
    fn created_dirs_in_use_stay_with_their_parents() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b");
        let created = create_private_dirs(&deep).unwrap();
        std::fs::write(deep.join("other.sock"), "").unwrap();
        drop(created);
        assert!(deep.join("other.sock").exists());
        assert!(root.path().join("a").is_dir());
    }

    #[test]
    fn created_dirs_replaced_by_a_link_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("acp");
        let created = create_private_dirs(&dir).unwrap();
        // The directory moves away and a link to it (empty, same inode) takes its place.
        let moved = root.path().join("moved");
        std::fs::rename(&dir, &moved).unwrap();
        std::os::unix::fs::symlink(&moved, &dir).unwrap();
        drop(created);
        assert!(dir.symlink_metadata().unwrap().file_type().is_symlink());
        assert!(moved.is_dir());
    }

    #[test]
    fn replaces_content_with_the_given_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bound");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn tree_reads_refuse_links_and_special_files() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "key").unwrap();
        std::fs::create_dir(root.path().join(".terok")).unwrap();
        std::fs::write(root.path().join(".terok/a.md"), "text").unwrap();
        let rel = |p: &str| Path::new(p).to_path_buf();
        assert_eq!(
            read_in_tree(root.path(), &rel(".terok/a.md"))
                .unwrap()
                .as_deref(),
            Some("text")
        );
        assert_eq!(
            read_in_tree(root.path(), &rel(".terok/none.md")).unwrap(),
            None
        );
        assert_eq!(
            read_in_tree(root.path(), &rel("absent/a.md")).unwrap(),
            None
        );
        // A link as the file, or as a directory on the way, is refused.
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            root.path().join(".terok/l.md"),
        )
        .unwrap();
        assert!(read_in_tree(root.path(), &rel(".terok/l.md")).is_err());
        std::os::unix::fs::symlink(outside.path(), root.path().join("linked")).unwrap();
        assert!(read_in_tree(root.path(), &rel("linked/secret")).is_err());
        assert!(list_in_tree(root.path(), &rel("linked")).is_err());
        // A FIFO does not block the read.
        nix::unistd::mkfifo(
            &root.path().join(".terok/fifo.md"),
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .unwrap();
        assert!(read_in_tree(root.path(), &rel(".terok/fifo.md")).is_err());
        assert!(read_in_tree(root.path(), &rel("../x")).is_err());
        assert_eq!(
            list_in_tree(root.path(), &rel(".terok")).unwrap(),
            ["a.md", "fifo.md", "l.md"]
        );
        assert!(list_in_tree(root.path(), &rel("nowhere"))
            .unwrap()
            .is_empty());
    }
}
