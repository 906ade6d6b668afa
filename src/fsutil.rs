//! Small filesystem helpers with the guarantees the daemon's files need.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `contents` to `path` atomically: a temporary file in the same directory with `mode`,
/// synced, then renamed over the target. Readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
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
        file.sync_all()?;
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
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    write_atomic(path, contents, mode)
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
