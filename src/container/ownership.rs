//! Handing the launcher's mount directories to the container's `dev` user under rootful Podman.
//!
//! Rootless Podman maps the host user to `dev` (`keep-id`), so directories the launcher creates
//! are writable inside. Rootful Podman maps nothing: `dev` (uid 1000) meets directories owned by
//! root, and agents that keep state in their home (codex's `~/.codex` database, claude's
//! `~/.claude`) fail to start. The launcher therefore gives its own mount directories, and what
//! is in them, to uid 1000. Symlinks are never followed, and only entries owned by root change
//! hands, so nothing of another user is taken.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{fchownat, Gid, Uid};

/// The container's `dev` user and group.
pub const CONTAINER_UID: u32 = 1000;
pub const CONTAINER_GID: u32 = 1000;

/// Gives `root`-owned entries under each of `dirs` (the directories themselves included) to
/// `uid:gid`, without following symlinks.
pub fn hand_over(dirs: &[impl AsRef<Path>], uid: u32, gid: u32) -> std::io::Result<()> {
    for dir in dirs {
        walk(dir.as_ref(), uid, gid)?;
    }
    Ok(())
}

fn walk(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.uid() == 0 {
        fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| {
            std::io::Error::new(
                std::io::Error::from(e).kind(),
                format!("cannot give {} to uid {uid}: {e}", path.display()),
            )
        })?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_owned_entries_change_hands_and_symlinks_are_not_followed() {
        if !nix::unistd::geteuid().is_root() {
            // Without root nothing can be given away: the first chown is refused, and said so.
            let dir = tempfile::tempdir().unwrap();
            let meta = std::fs::metadata(dir.path()).unwrap();
            assert_ne!(meta.uid(), 0);
            hand_over(&[dir.path()], CONTAINER_UID, CONTAINER_GID).unwrap();
            assert_ne!(std::fs::metadata(dir.path()).unwrap().uid(), CONTAINER_UID);
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounts = dir.path().join("mounts");
        std::fs::create_dir_all(mounts.join("_codex-config/sub")).unwrap();
        std::fs::write(mounts.join("_codex-config/config.toml"), "x").unwrap();
        // Someone else's file stays theirs; a symlink out of the tree is not followed.
        let foreign = mounts.join("_codex-config/foreign");
        std::fs::write(&foreign, "y").unwrap();
        nix::unistd::chown(&foreign, Some(Uid::from_raw(4242)), None).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "z").unwrap();
        std::os::unix::fs::symlink(&outside, mounts.join("_codex-config/link")).unwrap();

        hand_over(
            &[mounts.join("_codex-config"), dir.path().join("absent")],
            1000,
            1000,
        )
        .unwrap();
        for p in [
            "_codex-config",
            "_codex-config/sub",
            "_codex-config/config.toml",
        ] {
            let meta = std::fs::metadata(mounts.join(p)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{p}");
        }
        assert_eq!(std::fs::metadata(&foreign).unwrap().uid(), 4242);
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0);
        assert_eq!(
            std::fs::metadata(&mounts).unwrap().uid(),
            0,
            "only the given dirs"
        );
    }
}
