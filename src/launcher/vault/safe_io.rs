//! File access inside a provider's shared config directory that a container
//! cannot redirect.
//!
//! Shared directories are mounted read-write into task containers, so anything
//! in them may be a planted symlink. Paths are first checked to stay inside the
//! directory, then every open refuses to follow a symlink in the final
//! component (`O_NOFOLLOW`), which closes the window between check and use.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;

use super::error::ConfigPatchError;

const ELOOP: i32 = nix::errno::Errno::ELOOP as i32;

/// Resolves `filename` inside `shared_dir`, refusing absolute paths, `..` and
/// anything that resolves outside the directory.
///
/// A symlink pointing inside the directory is followed; the returned path is the
/// resolved one. `shared_dir` must exist.
pub fn safe_config_path(shared_dir: &Path, filename: &str) -> Result<PathBuf, ConfigPatchError> {
    let rel = Path::new(filename);
    if filename.is_empty()
        || rel.is_absolute()
        || rel.components().any(|c| matches!(c, Component::ParentDir))
    {
        return Err(ConfigPatchError::InvalidPath {
            file: filename.to_string(),
        });
    }
    let base = shared_dir
        .canonicalize()
        .map_err(|source| ConfigPatchError::Io {
            path: shared_dir.to_path_buf(),
            source,
        })?;
    let target = resolve_lenient(&shared_dir.join(rel));
    if !target.starts_with(&base) {
        return Err(ConfigPatchError::Escapes { target, base });
    }
    Ok(target)
}

/// Resolves `path` like a lenient `realpath`: symlinks are followed wherever
/// they exist (a dangling one included, to where it points) and components
/// that do not exist are appended verbatim.
fn resolve_lenient(path: &Path) -> PathBuf {
    resolve_from(PathBuf::from("/"), path, 0)
}

fn resolve_from(mut cur: PathBuf, path: &Path, depth: usize) -> PathBuf {
    for comp in path.components() {
        match comp {
            Component::RootDir => cur = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(name) => {
                let candidate = cur.join(name);
                match std::fs::read_link(&candidate) {
                    Ok(target) if depth < 40 => {
                        let base = if target.is_absolute() {
                            PathBuf::from("/")
                        } else {
                            cur.clone()
                        };
                        cur = resolve_from(base, &target, depth + 1);
                    }
                    _ => cur = candidate,
                }
            }
        }
    }
    cur
}

/// Reads `path` without following a symlink; `None` when it does not exist.
pub fn read_nofollow(path: &Path) -> Result<Option<Vec<u8>>, ConfigPatchError> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(ELOOP) => {
            return Err(ConfigPatchError::SymlinkRead {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(ConfigPatchError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|source| ConfigPatchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(data))
}

/// Writes `data` to `path` (mode 0644 when created) without following a symlink.
pub fn write_nofollow(path: &Path, data: &[u8]) -> Result<(), ConfigPatchError> {
    let io_err = |source| ConfigPatchError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(ELOOP) => {
            return Err(ConfigPatchError::SymlinkWrite {
                path: path.to_path_buf(),
            })
        }
        Err(source) => return Err(io_err(source)),
    };
    file.write_all(data).map_err(io_err)
}

/// Deletes `path` without following a symlink; a missing file is fine.
pub fn delete_nofollow(path: &Path) -> Result<(), ConfigPatchError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(ConfigPatchError::DeleteDirectory {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::IsADirectory => Err(ConfigPatchError::DeleteDirectory {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(ConfigPatchError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn write_creates_and_overwrites_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/config.toml");
        write_nofollow(&p, b"one").unwrap();
        write_nofollow(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
    }

    #[test]
    fn write_through_symlink_is_refused_and_victim_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("config.toml");
        symlink(&victim, &link).unwrap();
        let err = write_nofollow(&link, b"evil").unwrap_err();
        assert!(
            err.to_string()
                .contains("refusing to write through symlink"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn read_returns_content_none_or_refuses_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "x").unwrap();
        assert_eq!(read_nofollow(&p).unwrap().unwrap(), b"x");
        assert!(read_nofollow(&dir.path().join("missing"))
            .unwrap()
            .is_none());
        let link = dir.path().join("l");
        symlink(&p, &link).unwrap();
        assert!(read_nofollow(&link)
            .unwrap_err()
            .to_string()
            .contains("refusing to read through symlink"));
    }

    #[test]
    fn delete_ignores_missing_removes_links_not_targets_and_refuses_directories() {
        let dir = tempfile::tempdir().unwrap();
        delete_nofollow(&dir.path().join("missing")).unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("l");
        symlink(&target, &link).unwrap();
        delete_nofollow(&link).unwrap();
        assert!(target.exists());
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        assert!(delete_nofollow(&sub)
            .unwrap_err()
            .to_string()
            .contains("refusing to delete directory"));
    }

    #[test]
    fn traversal_and_absolute_paths_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../../../etc/passwd", "/etc/passwd", "a/../../x", ""] {
            let err = safe_config_path(dir.path(), bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid patch file path"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn plain_name_resolves_inside_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let p = safe_config_path(dir.path(), "config.toml").unwrap();
        assert_eq!(p, dir.path().canonicalize().unwrap().join("config.toml"));
    }

    #[test]
    fn symlink_escaping_the_dir_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path().join("x"), dir.path().join("config.toml")).unwrap();
        let err = safe_config_path(dir.path(), "config.toml").unwrap_err();
        assert!(err.to_string().contains("escapes shared dir"), "{err}");
        symlink(outside.path(), dir.path().join("sub")).unwrap();
        assert!(safe_config_path(dir.path(), "sub/x")
            .unwrap_err()
            .to_string()
            .contains("escapes"));
    }

    #[test]
    fn symlink_inside_the_dir_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.toml"), "").unwrap();
        symlink("real.toml", dir.path().join("config.toml")).unwrap();
        let p = safe_config_path(dir.path(), "config.toml").unwrap();
        assert_eq!(p, dir.path().canonicalize().unwrap().join("real.toml"));
    }

    #[test]
    fn missing_shared_dir_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            safe_config_path(&dir.path().join("nope"), "a"),
            Err(ConfigPatchError::Io { .. })
        ));
    }
}
