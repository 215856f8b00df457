//! dockhand's command-line tools, run instead of serving: [`routes`] (what a running instance
//! routes, from its admin listener) and [`check`] (what discovery would make of every running
//! container). Each returns the process's exit status.

pub mod check;
pub mod routes;

/// sysexits' EX_USAGE: a setting is invalid.
pub const EX_USAGE: u8 = 64;
