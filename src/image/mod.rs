//! Agent images: naming, Dockerfile rendering, the in-memory build context and the build itself.
//!
//! # Layout
//! - [`tags`]: `terok-l0:<base>` and `terok-l1-cli:<base>[-<agents>]`.
//! - [`family`]: apt or dnf, from the base image name or an override.
//! - [`sources`]: vendor sources or package registries only.
//! - [`render`]: the L0/L1 templates and the roster's install snippets.
//! - [`context`]: the tar archive the API builds from.
//! - [`build`]: `ensure_images` through the API, skipping images that exist.
//! - [`progress`]: the build output, as a status line on a terminal or plain lines otherwise.
//! - [`cli`]: the `build` subcommand.

pub mod build;
pub mod cli;
pub mod context;
pub mod family;
pub mod progress;
pub mod render;
pub mod sources;
pub mod tags;

pub use build::{ensure_images, BuildError, BuildRequest, ImageSet};
pub use family::Family;
pub use sources::Sources;
