//! Container hardening: what a container may do, by default and with `--unrestricted`.
//!
//! The default is as tight as an agent container allows: every capability dropped, no privilege
//! gain (setuid `sudo` stops working), a read-only root filesystem with tmpfs where programs
//! expect to write (`/tmp`, `/run`, `/var/tmp`) and an anonymous volume for the dev user's home
//! (agents keep caches and state there and the image's installs live there), bounded process
//! count and memory, and, when the engine runs rootless, the user namespace that maps the dev
//! user to the invoking user. `--unrestricted` relaxes each of these explicitly.

use bollard::models::{HostConfig, Mount, MountType};

/// The dev user's home in the images.
pub const HOME: &str = "/home/dev";
/// Default bound on processes (fork bombs, runaway builds).
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;
/// Default memory bound: 8 GiB.
pub const DEFAULT_MEMORY: i64 = 8 << 30;
/// tmpfs mounts of a read-only container.
pub const TMPFS: &[(&str, &str)] = &[
    ("/tmp", "rw,nosuid,nodev,mode=1777"),
    ("/var/tmp", "rw,nosuid,nodev,mode=1777"),
    ("/run", "rw,nosuid,nodev,mode=755"),
];

/// The restrictions of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// Drop every capability (`cap_drop: ALL`).
    pub drop_all_caps: bool,
    /// Capabilities added back (none by default: the agents run as the dev user).
    pub cap_add: Vec<String>,
    /// `no-new-privileges`: setuid binaries (`sudo`) cannot raise privileges.
    pub no_new_privileges: bool,
    /// Read-only root filesystem, with [`TMPFS`] and a volume for [`HOME`].
    pub read_only_root: bool,
    pub pids_limit: Option<i64>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// `keep-id:uid=1000,gid=1000`: host files the user owns are the dev user's in the container.
    pub keep_id: bool,
}

impl Hardening {
    /// The default restrictions; `rootless` when the engine runs as an unprivileged user.
    pub fn restricted(rootless: bool) -> Hardening {
        Hardening {
            drop_all_caps: true,
            cap_add: Vec::new(),
            no_new_privileges: true,
            read_only_root: true,
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
            memory: Some(DEFAULT_MEMORY),
            keep_id: rootless,
        }
    }

    /// `--unrestricted`: the engine's defaults for capabilities, privileges, root filesystem and
    /// limits. The user-namespace mapping stays: it is about file ownership, not confinement.
    pub fn unrestricted(rootless: bool) -> Hardening {
        Hardening {
            drop_all_caps: false,
            cap_add: Vec::new(),
            no_new_privileges: false,
            read_only_root: false,
            pids_limit: None,
            memory: None,
            keep_id: rootless,
        }
    }

    /// Writes the restrictions into `host`.
    pub fn apply(&self, host: &mut HostConfig) {
        if self.drop_all_caps {
            host.cap_drop = Some(vec!["ALL".into()]);
        }
        if !self.cap_add.is_empty() {
            host.cap_add = Some(self.cap_add.clone());
        }
        if self.no_new_privileges {
            host.security_opt
                .get_or_insert_with(Vec::new)
                .push("no-new-privileges".into());
        }
        if self.read_only_root {
            host.readonly_rootfs = Some(true);
            host.tmpfs = Some(
                TMPFS
                    .iter()
                    .map(|(path, opts)| (path.to_string(), opts.to_string()))
                    .collect(),
            );
            // An anonymous volume is filled from the image on creation, so the installs under
            // the home survive; it goes away with the container.
            host.mounts.get_or_insert_with(Vec::new).push(Mount {
                target: Some(HOME.into()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            });
        }
        host.pids_limit = self.pids_limit;
        host.memory = self.memory;
        if self.keep_id {
            host.userns_mode = Some("keep-id:uid=1000,gid=1000".into());
        }
    }
}

/// Parses a memory size: bytes, or a number with `k`, `m`, `g` or `t` (binary units, case and a
/// trailing `b` ignored).
pub fn parse_memory(text: &str) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("invalid memory size {text:?} (examples: 512m, 8g)"))?;
    n.checked_mul(1 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid memory size {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_sets_every_restriction() {
        let mut host = HostConfig::default();
        Hardening::restricted(true).apply(&mut host);
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, None);
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        let tmpfs = host.tmpfs.unwrap();
        assert!(tmpfs.contains_key("/tmp") && tmpfs.contains_key("/run"));
        assert_eq!(host.mounts.unwrap()[0].target.as_deref(), Some("/home/dev"));
        assert_eq!(host.pids_limit, Some(DEFAULT_PIDS_LIMIT));
        assert_eq!(host.memory, Some(DEFAULT_MEMORY));
        assert_eq!(
            host.userns_mode.as_deref(),
            Some("keep-id:uid=1000,gid=1000")
        );
    }

    #[test]
    fn root_engine_gets_no_userns_mapping() {
        let mut host = HostConfig::default();
        Hardening::restricted(false).apply(&mut host);
        assert_eq!(host.userns_mode, None);
    }

    #[test]
    fn unrestricted_relaxes_everything_but_ownership() {
        let mut host = HostConfig::default();
        Hardening::unrestricted(true).apply(&mut host);
        assert_eq!(host.cap_drop, None);
        assert_eq!(host.security_opt, None);
        assert_eq!(host.readonly_rootfs, None);
        assert_eq!(host.tmpfs, None);
        assert_eq!(host.pids_limit, None);
        assert_eq!(host.memory, None);
        assert!(host.userns_mode.is_some());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("8G"), Ok(8 << 30));
        assert_eq!(parse_memory("2gb"), Ok(2 << 30));
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("-1g").is_err());
    }
}
