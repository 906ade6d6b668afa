//! The package family of a base image: `deb` (apt) or `rpm` (dnf).
//!
//! Detection is a small allowlist of image-name prefixes; anything else must be told explicitly,
//! because guessing wrong produces a Dockerfile that fails minutes into a build.

use std::fmt;
use std::str::FromStr;

use super::tags::normalize_base_image;

/// Which package manager the templates use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Deb,
    Rpm,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Deb => "deb",
            Family::Rpm => "rpm",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamilyError {
    #[error("family must be 'deb' or 'rpm', got {0:?}")]
    BadOverride(String),
    #[error("cannot infer package family for base image {0:?}; pass --family deb or --family rpm")]
    Unknown(String),
}

impl FromStr for Family {
    type Err = FamilyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deb" => Ok(Family::Deb),
            "rpm" => Ok(Family::Rpm),
            other => Err(FamilyError::BadOverride(other.to_owned())),
        }
    }
}

/// How a known prefix decides the family.
enum Rule {
    Fixed(Family),
    /// NVIDIA publishes Ubuntu and UBI variants under one name; the tag tells them apart.
    ByUbiTag,
}

const KNOWN: &[(&str, Rule)] = &[
    (
        "registry.fedoraproject.org/fedora",
        Rule::Fixed(Family::Rpm),
    ),
    ("quay.io/podman", Rule::Fixed(Family::Rpm)),
    ("nvcr.io/nvidia", Rule::ByUbiTag),
    ("nvidia", Rule::ByUbiTag),
    ("ubuntu", Rule::Fixed(Family::Deb)),
    ("debian", Rule::Fixed(Family::Deb)),
    ("fedora", Rule::Fixed(Family::Rpm)),
];

/// Splits a reference into name and tag: the digest is dropped, and a `:` separates the tag only
/// when it comes after the last `/` (so a registry port stays in the name).
pub fn split_image_ref(reference: &str) -> (&str, &str) {
    let name = reference.split('@').next().unwrap_or(reference);
    match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon > s) => {
            (&name[..colon], &name[colon + 1..])
        }
        _ => (name, ""),
    }
}

/// `ubi` followed by a digit, anywhere in the tag, case-insensitively.
fn has_ubi_marker(tag: &str) -> bool {
    let lower = tag.to_ascii_lowercase();
    lower
        .match_indices("ubi")
        .any(|(i, _)| lower[i + 3..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The family of `base`: the override when given (it must be `deb` or `rpm`), else detected.
pub fn detect_family(base: &str, override_: Option<&str>) -> Result<Family, FamilyError> {
    if let Some(o) = override_ {
        return o.parse();
    }
    let (name, tag) = split_image_ref(normalize_base_image(base));
    let name = name.to_lowercase();
    // A local image (`podman import ... localhost/debian:trixie`) or Docker Hub's own spelling
    // names the same distribution as the bare name.
    let name = ["localhost/", "docker.io/library/", "docker.io/"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(&name);
    for (prefix, rule) in KNOWN {
        let matches = name == *prefix
            || name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        if matches {
            return Ok(match rule {
                Rule::Fixed(f) => *f,
                Rule::ByUbiTag if has_ubi_marker(tag) => Family::Rpm,
                Rule::ByUbiTag => Family::Deb,
            });
        }
    }
    Err(FamilyError::Unknown(base.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(base: &str) -> Result<Family, FamilyError> {
        detect_family(base, None)
    }

    #[test]
    fn known_prefixes() {
        assert_eq!(fam("ubuntu:24.04"), Ok(Family::Deb));
        assert_eq!(fam(""), Ok(Family::Deb));
        assert_eq!(fam("debian"), Ok(Family::Deb));
        assert_eq!(fam("localhost/debian:trixie"), Ok(Family::Deb));
        assert_eq!(fam("docker.io/library/fedora:43"), Ok(Family::Rpm));
        assert_eq!(fam("docker.io/ubuntu:24.04"), Ok(Family::Deb));
        assert!(fam("localhost/mydebian:1").is_err());
        assert_eq!(fam("fedora:43"), Ok(Family::Rpm));
        assert_eq!(fam("registry.fedoraproject.org/fedora:41"), Ok(Family::Rpm));
        assert_eq!(fam("quay.io/podman/stable"), Ok(Family::Rpm));
        assert_eq!(fam("UBUNTU:24.04"), Ok(Family::Deb));
    }

    #[test]
    fn nvidia_tag_decides() {
        assert_eq!(
            fam("nvcr.io/nvidia/cuda:13.0.0-devel-ubi9"),
            Ok(Family::Rpm)
        );
        assert_eq!(
            fam("nvcr.io/nvidia/cuda:13.0.0-devel-ubuntu24.04"),
            Ok(Family::Deb)
        );
        assert_eq!(fam("nvidia/cuda:12.4-UBI8"), Ok(Family::Rpm));
        assert_eq!(fam("nvidia/cuda"), Ok(Family::Deb));
        assert_eq!(fam("nvidia/cuda:ubi"), Ok(Family::Deb));
    }

    #[test]
    fn prefix_must_end_at_a_path_boundary() {
        assert!(matches!(
            fam("ubuntu-custom:1"),
            Err(FamilyError::Unknown(_))
        ));
        assert!(matches!(fam("fedoraish"), Err(FamilyError::Unknown(_))));
    }

    #[test]
    fn registry_port_is_not_a_tag() {
        assert!(matches!(
            fam("localhost:5000/ubuntu:24.04"),
            Err(FamilyError::Unknown(_))
        ));
        assert_eq!(
            split_image_ref("localhost:5000/ubuntu:24.04"),
            ("localhost:5000/ubuntu", "24.04")
        );
        assert_eq!(
            split_image_ref("localhost:5000/ubuntu"),
            ("localhost:5000/ubuntu", "")
        );
        assert_eq!(split_image_ref("ubuntu@sha256:abc"), ("ubuntu", ""));
    }

    #[test]
    fn unknown_base_names_the_flag() {
        let err = fam("rockylinux:9").unwrap_err();
        assert!(err.to_string().contains("--family"), "{err}");
    }

    #[test]
    fn override_wins_and_is_checked() {
        assert_eq!(detect_family("rockylinux:9", Some("rpm")), Ok(Family::Rpm));
        assert_eq!(detect_family("ubuntu", Some("rpm")), Ok(Family::Rpm));
        assert_eq!(
            detect_family("ubuntu", Some("apk")),
            Err(FamilyError::BadOverride("apk".into()))
        );
    }
}
