//! Where an image build takes its packages from.
//!
//! `vendors` (the default) adds the vendors' own sources where they are the usual route: Node.js
//! from NodeSource, yq from its GitHub releases, uv from its install script. `registries` takes
//! everything from the package registries a company mirror typically carries: the distribution's
//! archive, npm and PyPI. The agents themselves come from npm and PyPI, pinned, either way.

use std::fmt;
use std::str::FromStr;

/// Node.js of registry-only builds: the `node-linux-<arch>` package on npm.
pub const NODE_VERSION: &str = "22.23.3";
/// npm of registry-only builds (the `npm` package itself).
pub const NPM_VERSION: &str = "11.21.2";

/// The package sources of a build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sources {
    #[default]
    Vendors,
    Registries,
}

impl Sources {
    pub fn as_str(self) -> &'static str {
        match self {
            Sources::Vendors => "vendors",
            Sources::Registries => "registries",
        }
    }
}

impl fmt::Display for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sources {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vendors" => Ok(Sources::Vendors),
            "registries" => Ok(Sources::Registries),
            other => Err(format!(
                "sources must be 'vendors' or 'registries', got {other:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for s in [Sources::Vendors, Sources::Registries] {
            assert_eq!(s.as_str().parse::<Sources>(), Ok(s));
        }
        assert!("npm"
            .parse::<Sources>()
            .unwrap_err()
            .contains("'registries'"));
        assert_eq!(Sources::default(), Sources::Vendors);
    }
}
