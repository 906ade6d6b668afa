//! Agent containers.
