//! Sealed containers: no bind mounts at all. What a launch would mount (the workspace, the agent
//! config dir, the shared config directories and their credential files) is copied in through
//! the API's archive upload after the container is created and before it starts; `pull` copies
//! results back out.
//!
//! The workspace lives on an anonymous volume (the read-only root file system could not take it),
//! as the home already does. Uploads are tar archives built here: entries are owned by the
//! container's `dev` user, symlinks are stored as links and never followed, and anything that is
//! neither a file, a directory nor a link (sockets, devices) is left out. A pull unpacks into a
//! directory that must not exist yet (or be empty), refusing entries that would land outside it,
//! so a container cannot write anywhere else on the host.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use bollard::models::{HostConfig, Mount, MountType};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use crate::launcher::env::{Volume, CONTAINER_WORKSPACE};

/// One host path copied to a container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub host: PathBuf,
    /// Where it goes: a directory's content into this directory, a file to this path.
    pub container: String,
}

/// The uploads that replace `volumes`, in mount order (later ones land over earlier ones, as
/// the mounts would).
pub fn uploads_for(volumes: &[Volume]) -> Vec<Upload> {
    volumes
        .iter()
        .map(|v| Upload {
            host: v.host.clone(),
            container: v.container.clone(),
        })
        .collect()
}

/// The anonymous volume the sealed workspace lives on.
pub fn add_workspace_volume(host: &mut HostConfig) {
    host.mounts.get_or_insert_with(Vec::new).push(Mount {
        target: Some(CONTAINER_WORKSPACE.into()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    });
}

/// A tar archive of `upload`, owned by `uid:gid`, written to a temporary file, and the
/// container directory to extract it in.
pub fn pack(upload: &Upload, uid: u64, gid: u64) -> anyhow::Result<(std::fs::File, String)> {
    let meta = std::fs::symlink_metadata(&upload.host)
        .with_context(|| format!("cannot read {}", upload.host.display()))?;
    let file = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut builder = tar::Builder::new(file);
    builder.follow_symlinks(false);
    let into = if meta.is_dir() {
        append(&mut builder, &upload.host, Path::new("."), uid, gid)?;
        upload.container.clone()
    } else {
        let target = Path::new(&upload.container);
        let name = target
            .file_name()
            .with_context(|| format!("{} names no file", upload.container))?;
        append(&mut builder, &upload.host, Path::new(name), uid, gid)?;
        target
            .parent()
            .map_or_else(|| "/".to_owned(), |p| p.display().to_string())
    };
    let mut file = builder.into_inner().context("cannot finish the archive")?;
    std::io::Seek::rewind(&mut file)?;
    Ok((file, into))
}

/// Appends `path` as `name` (and, for a directory, what is in it).
fn append(
    builder: &mut tar::Builder<std::fs::File>,
    path: &Path,
    name: &Path,
    uid: u64,
    gid: u64,
) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata(&meta);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(meta.mtime().max(0) as u64);
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path)?;
        header.set_size(0);
        builder.append_link(&mut header, name, target)?;
    } else if kind.is_file() {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        builder.append_data(&mut header, name, file)?;
    } else if kind.is_dir() {
        header.set_size(0);
        builder.append_data(&mut header, name, std::io::empty())?;
        let mut entries: Vec<_> = std::fs::read_dir(path)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            append(
                builder,
                &entry.path(),
                &name.join(entry.file_name()),
                uid,
                gid,
            )?;
        }
    } else {
        tracing::debug!(path = %path.display(), "neither file, directory nor link: not copied");
    }
    Ok(())
}

/// Copies every upload into the created container `name`.
pub async fn upload_all(
    docker: &Docker,
    name: &str,
    uploads: &[Upload],
    owner: (u64, u64),
) -> anyhow::Result<()> {
    for upload in uploads {
        let (file, into) = pack(upload, owner.0, owner.1)?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(&into)
            .build();
        let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
        docker
            .upload_to_container(name, Some(options), bollard::body_try_stream(stream))
            .await
            .with_context(|| format!("cannot copy {} into {name}:{into}", upload.host.display()))?;
    }
    Ok(())
}

/// `pull`: copies `path` (a directory or a file) out of container `name` into `dest`, which
/// must not exist or be empty. How many entries were written.
pub async fn pull(docker: &Docker, name: &str, path: &str, dest: &Path) -> anyhow::Result<usize> {
    if let Ok(mut entries) = std::fs::read_dir(dest) {
        if entries.next().is_some() {
            bail!("{} is not empty: pull into a new directory", dest.display());
        }
    } else if dest.exists() {
        bail!("{} exists and is not a directory", dest.display());
    }
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(name, Some(options));
    let archive = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut archive = tokio::fs::File::from_std(archive);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match e {
            e if crate::podman::is_not_found(&e) => {
                anyhow::anyhow!("{name} has no {path} (or there is no container {name})")
            }
            e => anyhow::Error::from(e).context(format!("cannot copy {path} out of {name}")),
        })?;
        tokio::io::AsyncWriteExt::write_all(&mut archive, &chunk).await?;
    }
    let mut archive = archive.into_std().await;
    std::io::Seek::rewind(&mut archive)?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let dest = dest.to_owned();
    tokio::task::spawn_blocking(move || unpack(archive, &dest)).await?
}

/// Unpacks `archive` under `dest`; entries that would leave it are refused.
fn unpack(archive: std::fs::File, dest: &Path) -> anyhow::Result<usize> {
    let mut tar = tar::Archive::new(archive);
    tar.set_preserve_permissions(true);
    tar.set_overwrite(false);
    let mut count = 0;
    for entry in tar.entries().context("the container sent no archive")? {
        let mut entry = entry.context("the container's archive is damaged")?;
        let inside = entry.path()?.into_owned();
        // `unpack_in` refuses `..` and entries that would be written through a link out of
        // `dest`; absolute names are taken as relative to it.
        if !entry
            .unpack_in(dest)
            .with_context(|| format!("cannot write {}", inside.display()))?
        {
            bail!(
                "the archive names {}, outside the destination",
                inside.display()
            );
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(file: std::fs::File) -> Vec<(String, u64, tar::EntryType)> {
        let mut tar = tar::Archive::new(file);
        tar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().uid().unwrap(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn a_directory_is_packed_with_its_links_as_links_and_owned_by_the_dev_user() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), ws.join("link")).unwrap();
        let upload = Upload {
            host: ws,
            container: "/workspace".into(),
        };
        let (file, into) = pack(&upload, 1000, 1000).unwrap();
        assert_eq!(into, "/workspace");
        let got = names(file);
        let paths: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, [".", "link", "src", "src/main.rs"]);
        assert!(got.iter().all(|(_, uid, _)| *uid == 1000));
        assert_eq!(
            got[1].2,
            tar::EntryType::Symlink,
            "the link, not what it points at"
        );
    }

    #[test]
    fn a_file_lands_under_its_container_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.yml");
        std::fs::write(&file, "x").unwrap();
        let upload = Upload {
            host: file,
            container: "/home/dev/.config/gh/hosts.yml".into(),
        };
        let (archive, into) = pack(&upload, 1000, 1000).unwrap();
        assert_eq!(into, "/home/dev/.config/gh");
        assert_eq!(names(archive)[0].0, "hosts.yml");
    }

    #[test]
    fn unpacking_refuses_to_leave_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(tempfile::tempfile().unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "fine.txt", &b"okay"[..])
            .unwrap();
        let mut evil = tar::Header::new_gnu();
        evil.set_size(4);
        evil.set_mode(0o644);
        evil.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`, so the name goes into the header by hand.
        evil.as_old_mut().name[..11].copy_from_slice(b"../evil.txt");
        evil.set_cksum();
        builder.append(&evil, &b"evil"[..]).unwrap();
        let mut file = builder.into_inner().unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let err = unpack(file, &dest).unwrap_err();
        assert!(format!("{err:#}").contains("outside"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(dest.join("fine.txt")).unwrap(),
            "okay"
        );
        assert!(!dir.path().join("evil.txt").exists());
    }
}
