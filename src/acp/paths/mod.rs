//! Host ↔ container path translation.
//!
//! The editor speaks host paths (its project at `/home/u/proj`); agents see the container's
//! workspace (`/workspace` by default) and perhaps a few extra mounts. A [`PathMap`] holds those
//! pairs of roots and translates single paths and `file:` URIs either way. [`rewrite`] applies it
//! to payloads the proxy has already parsed, editing the raw [`serde_json::Value`] in place.
//!
//! Invariants:
//! - Every root is absolute and lexically normal (no `.`, `..`, empty or trailing components),
//!   valid UTF-8, and no host root or container root appears twice.
//! - Matching is on whole components: `/home/u/proj2` is not under `/home/u/proj`.
//! - Inputs are normalised lexically before matching, so `..` cannot climb out of a root:
//!   `/workspace/../etc/passwd` is `/etc/passwd`, which maps only if `/etc` is itself mapped.
//! - The longest matching root wins, so a mount nested inside another behaves as it does in the
//!   container.
//! - Nothing here touches the file system; what a symlink inside a mount points at is the mount's
//!   business, not the map's.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod rewrite;
#[cfg(test)]
mod snapshots;
mod uri;

pub use rewrite::PathError;

/// Which side of the mount a path belongs to; translation names the side it maps *to*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The editor's machine.
    Host,
    /// Inside the agents' container.
    Container,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Host => "host",
            Side::Container => "container",
        })
    }
}

/// Pairs of directories that are the same files seen from the host and from the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    /// `(host root, container root)`, each absolute, normal and unique on its side.
    pairs: Vec<(PathBuf, PathBuf)>,
}

/// Why a set of roots cannot form a [`PathMap`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathMapError {
    #[error("mapped path {0:?} is not absolute")]
    Relative(PathBuf),
    #[error("mapped path {0:?} contains `..`")]
    Climbs(PathBuf),
    #[error("mapped path {0:?} is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("{side} directory {path:?} is mapped twice")]
    Duplicate { side: Side, path: PathBuf },
}

impl PathMap {
    /// A map from `(host, container)` pairs of directories.
    ///
    /// Redundant separators and `.` components are dropped; relative paths, `..` components
    /// (which only the file system could resolve) and a directory that appears twice on the same
    /// side are refused.
    pub fn new<H, C>(pairs: impl IntoIterator<Item = (H, C)>) -> Result<PathMap, PathMapError>
    where
        H: AsRef<Path>,
        C: AsRef<Path>,
    {
        let mut map = PathMap { pairs: Vec::new() };
        for (host, container) in pairs {
            let host = root(host.as_ref())?;
            let container = root(container.as_ref())?;
            if map.pairs.iter().any(|(h, _)| *h == host) {
                return Err(PathMapError::Duplicate {
                    side: Side::Host,
                    path: host,
                });
            }
            if map.pairs.iter().any(|(_, c)| *c == container) {
                return Err(PathMapError::Duplicate {
                    side: Side::Container,
                    path: container,
                });
            }
            map.pairs.push((host, container));
        }
        Ok(map)
    }

    /// The map of a runtime whose agents see the host's own file system: every absolute path is
    /// itself on both sides, and nothing is refused.
    pub fn identity() -> PathMap {
        PathMap {
            pairs: vec![(PathBuf::from("/"), PathBuf::from("/"))],
        }
    }

    /// The map of one session: the client's `cwd` is the container's workspace, and `extra`
    /// lists further mounts.
    pub fn for_session<H, C>(
        host_cwd: impl AsRef<Path>,
        container_workspace: impl AsRef<Path>,
        extra: impl IntoIterator<Item = (H, C)>,
    ) -> Result<PathMap, PathMapError>
    where
        H: AsRef<Path>,
        C: AsRef<Path>,
    {
        let workspace = (
            host_cwd.as_ref().to_path_buf(),
            container_workspace.as_ref().to_path_buf(),
        );
        let extra = extra
            .into_iter()
            .map(|(h, c)| (h.as_ref().to_path_buf(), c.as_ref().to_path_buf()));
        PathMap::new(std::iter::once(workspace).chain(extra))
    }

    /// The `(host, container)` roots, in the order they were given.
    pub fn pairs(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.pairs.iter().map(|(h, c)| (h.as_path(), c.as_path()))
    }

    /// The container path of a host path, or `None` when it is not absolute or lies outside
    /// every mapped directory. The result is normalised.
    pub fn to_container(&self, host: &str) -> Option<String> {
        self.map(host, Side::Container)
    }

    /// The host path of a container path; see [`PathMap::to_container`].
    pub fn to_host(&self, container: &str) -> Option<String> {
        self.map(container, Side::Host)
    }

    /// A `file:` URI with its path moved into the container. URIs of other schemes come back
    /// unchanged; `None` means a `file:` URI that is malformed, names another machine, or whose
    /// path maps nowhere.
    pub fn uri_to_container(&self, uri: &str) -> Option<String> {
        self.map_uri(uri, Side::Container)
    }

    /// A `file:` URI with its path moved to the host; see [`PathMap::uri_to_container`].
    pub fn uri_to_host(&self, uri: &str) -> Option<String> {
        self.map_uri(uri, Side::Host)
    }

    /// `path` translated to side `to`: the longest root containing it is swapped for its pair.
    pub fn map(&self, path: &str, to: Side) -> Option<String> {
        let path = normalize(path)?;
        let path = Path::new(&path);
        let (target, rest) = self
            .pairs
            .iter()
            .filter_map(|(host, container)| {
                let (from, target) = match to {
                    Side::Container => (host, container),
                    Side::Host => (container, host),
                };
                let rest = path.strip_prefix(from).ok()?;
                Some((from.components().count(), target, rest))
            })
            .max_by_key(|(depth, _, _)| *depth)
            .map(|(_, target, rest)| (target, rest))?;
        let mut mapped = target.clone();
        if !rest.as_os_str().is_empty() {
            mapped.push(rest);
        }
        mapped.into_os_string().into_string().ok()
    }

    /// `uri` with its `file:` path translated to side `to`; see [`PathMap::uri_to_container`].
    pub fn map_uri(&self, uri: &str, to: Side) -> Option<String> {
        match uri::FileUri::parse(uri) {
            uri::Parsed::Other => Some(uri.to_owned()),
            uri::Parsed::Malformed => None,
            uri::Parsed::File(file) => {
                let path = self.map(&file.path, to)?;
                Some(file.with_path(&path))
            }
        }
    }
}

/// A lexically normal absolute path: `.` and empty components dropped, each `..` removing the
/// component before it (never climbing above `/`), no trailing separator.
///
/// `None` for anything that is not an absolute Unix path (relative, `C:\…`, `\\server\…`) or
/// that contains NUL, which no file name can.
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return Some("/".to_owned());
    }
    let mut out = String::with_capacity(path.len());
    for part in parts {
        out.push('/');
        out.push_str(part);
    }
    Some(out)
}

/// A configured root, checked and normalised.
fn root(path: &Path) -> Result<PathBuf, PathMapError> {
    let text = path
        .to_str()
        .ok_or_else(|| PathMapError::NotUtf8(path.to_path_buf()))?;
    if text.split('/').any(|part| part == "..") {
        return Err(PathMapError::Climbs(path.to_path_buf()));
    }
    normalize(text)
        .map(PathBuf::from)
        .ok_or_else(|| PathMapError::Relative(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proj() -> PathMap {
        PathMap::for_session(
            "/home/u/proj",
            "/workspace",
            [("/home/u/.cache/x", "/cache")],
        )
        .unwrap()
    }

    #[test]
    fn cwd_maps_to_workspace_and_back() {
        let map = proj();
        assert_eq!(
            map.to_container("/home/u/proj").as_deref(),
            Some("/workspace")
        );
        assert_eq!(
            map.to_container("/home/u/proj/src/main.rs").as_deref(),
            Some("/workspace/src/main.rs")
        );
        assert_eq!(
            map.to_host("/workspace/src/main.rs").as_deref(),
            Some("/home/u/proj/src/main.rs")
        );
        assert_eq!(
            map.to_host("/cache/a").as_deref(),
            Some("/home/u/.cache/x/a")
        );
    }

    #[test]
    fn prefix_on_component_boundary_only() {
        let map = proj();
        assert_eq!(map.to_container("/home/u/proj2/a"), None);
        assert_eq!(map.to_container("/home/u/pro"), None);
        assert_eq!(map.to_host("/workspace2/a"), None);
        assert_eq!(map.to_host("/workspacefile"), None);
    }

    #[test]
    fn dotdot_cannot_escape_a_root() {
        let map = proj();
        assert_eq!(map.to_host("/workspace/../etc/passwd"), None);
        assert_eq!(map.to_host("/workspace/src/../../etc/passwd"), None);
        assert_eq!(map.to_container("/home/u/proj/../proj2/x"), None);
        assert_eq!(
            map.to_host("/workspace/../../../workspace/a").as_deref(),
            Some("/home/u/proj/a")
        );
        assert_eq!(
            map.to_host("/workspace/src/../lib.rs").as_deref(),
            Some("/home/u/proj/lib.rs")
        );
    }

    #[test]
    fn trailing_slashes_and_dots_are_normalised() {
        let map = proj();
        assert_eq!(
            map.to_container("/home/u/proj/").as_deref(),
            Some("/workspace")
        );
        assert_eq!(
            map.to_container("/home/u//proj/./src//").as_deref(),
            Some("/workspace/src")
        );
        assert_eq!(
            map.to_host("//workspace///a/.").as_deref(),
            Some("/home/u/proj/a")
        );
    }

    #[test]
    fn relative_and_windows_paths_map_nowhere() {
        let map = PathMap::identity();
        for path in [
            "",
            "workspace/a",
            "./a",
            "../etc",
            "C:\\Users\\u\\proj",
            "C:/x",
            "\\\\srv\\share",
            "~/proj",
        ] {
            assert_eq!(map.to_container(path), None, "{path:?}");
            assert_eq!(map.to_host(path), None, "{path:?}");
        }
    }

    #[test]
    fn nul_byte_maps_nowhere() {
        assert_eq!(PathMap::identity().to_host("/workspace/a\0b"), None);
    }

    #[test]
    fn longest_prefix_wins_with_nested_pairs() {
        let map = PathMap::new([
            ("/home/u/proj", "/workspace"),
            ("/home/u/proj/vendor", "/opt/vendor"),
            ("/srv/data", "/workspace/data"),
        ])
        .unwrap();
        assert_eq!(
            map.to_container("/home/u/proj/vendor/lib.rs").as_deref(),
            Some("/opt/vendor/lib.rs")
        );
        assert_eq!(
            map.to_container("/home/u/proj/vendored").as_deref(),
            Some("/workspace/vendored")
        );
        assert_eq!(
            map.to_host("/workspace/data/x.csv").as_deref(),
            Some("/srv/data/x.csv")
        );
        assert_eq!(
            map.to_host("/workspace/database").as_deref(),
            Some("/home/u/proj/database")
        );
        assert_eq!(
            map.to_host("/opt/vendor").as_deref(),
            Some("/home/u/proj/vendor")
        );
    }

    #[test]
    fn longest_prefix_wins_regardless_of_order() {
        let map = PathMap::new([("/a/b", "/y"), ("/a", "/x")]).unwrap();
        assert_eq!(map.to_container("/a/b/c").as_deref(), Some("/y/c"));
        assert_eq!(map.to_container("/a/c").as_deref(), Some("/x/c"));
    }

    #[test]
    fn root_slash_mapping_on_host_side() {
        let map = PathMap::new([("/", "/host")]).unwrap();
        assert_eq!(map.to_container("/").as_deref(), Some("/host"));
        assert_eq!(
            map.to_container("/etc/hosts").as_deref(),
            Some("/host/etc/hosts")
        );
        assert_eq!(
            map.to_host("/host/etc/hosts").as_deref(),
            Some("/etc/hosts")
        );
        assert_eq!(map.to_host("/host").as_deref(), Some("/"));
        assert_eq!(map.to_host("/etc/hosts"), None);
    }

    #[test]
    fn root_slash_mapping_on_container_side() {
        let map = PathMap::new([("/srv/root", "/")]).unwrap();
        assert_eq!(
            map.to_host("/etc/hosts").as_deref(),
            Some("/srv/root/etc/hosts")
        );
        assert_eq!(map.to_host("/").as_deref(), Some("/srv/root"));
        assert_eq!(map.to_container("/srv/root/etc").as_deref(), Some("/etc"));
        assert_eq!(map.to_container("/srv/rootfs"), None);
    }

    #[test]
    fn identity_map_keeps_paths_and_refuses_nothing_absolute() {
        let map = PathMap::identity();
        assert_eq!(
            map.to_container("/home/u/proj/a.rs").as_deref(),
            Some("/home/u/proj/a.rs")
        );
        assert_eq!(map.to_host("/etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(map.to_host("/").as_deref(), Some("/"));
        assert_eq!(map.to_host("/a/../b").as_deref(), Some("/b"));
    }

    #[test]
    fn empty_map_maps_nothing() {
        let map = PathMap::new(Vec::<(&str, &str)>::new()).unwrap();
        assert_eq!(map.to_container("/"), None);
        assert_eq!(map.to_host("/workspace"), None);
    }

    #[test]
    fn roots_are_normalised() {
        let map = PathMap::new([("/home/u/proj/", "/workspace/./")]).unwrap();
        assert_eq!(
            map.pairs().collect::<Vec<_>>(),
            vec![(Path::new("/home/u/proj"), Path::new("/workspace"))]
        );
    }

    #[test]
    fn relative_roots_are_rejected() {
        assert_eq!(
            PathMap::new([("proj", "/workspace")]),
            Err(PathMapError::Relative("proj".into()))
        );
        assert_eq!(
            PathMap::for_session("/home/u/proj", "workspace", Vec::<(&str, &str)>::new()),
            Err(PathMapError::Relative("workspace".into()))
        );
        assert!(matches!(
            PathMap::new([("C:\\proj", "/workspace")]),
            Err(PathMapError::Relative(_))
        ));
    }

    #[test]
    fn dotdot_roots_are_rejected() {
        assert_eq!(
            PathMap::new([("/home/u/../v", "/workspace")]),
            Err(PathMapError::Climbs("/home/u/../v".into()))
        );
    }

    #[test]
    fn duplicate_roots_are_rejected_on_either_side() {
        assert_eq!(
            PathMap::new([("/a", "/x"), ("/a/", "/y")]),
            Err(PathMapError::Duplicate {
                side: Side::Host,
                path: "/a".into()
            })
        );
        assert_eq!(
            PathMap::for_session("/a", "/workspace", [("/b", "/workspace")]),
            Err(PathMapError::Duplicate {
                side: Side::Container,
                path: "/workspace".into()
            })
        );
    }

    #[test]
    fn non_utf8_roots_are_rejected() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let bad = Path::new(OsStr::from_bytes(b"/home/\xff"));
        assert!(matches!(
            PathMap::new([(bad, Path::new("/w"))]),
            Err(PathMapError::NotUtf8(_))
        ));
    }

    #[test]
    fn normalize_edge_cases() {
        assert_eq!(normalize("/").as_deref(), Some("/"));
        assert_eq!(normalize("/..").as_deref(), Some("/"));
        assert_eq!(normalize("/a/b/../../..").as_deref(), Some("/"));
        assert_eq!(normalize("/a/...").as_deref(), Some("/a/..."));
        assert_eq!(normalize("/a/ b /").as_deref(), Some("/a/ b "));
        assert_eq!(normalize("/é/ü").as_deref(), Some("/é/ü"));
        assert_eq!(normalize("a"), None);
    }
}
