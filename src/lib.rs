//! dockhand: a dynamic reverse proxy for Docker, drop-in for nginx-proxy.
//!
//! The binary's library half, so that tests can run the whole app in process: [`config`] turns
//! flags and environment into a validated [`config::Config`], [`app::App`] is built from it
//! (binding its ports) and then run until a shutdown future completes, [`runtime`] provides the
//! worker runtimes the data plane is served on. `main.rs` only parses, sets up logging and
//! signals, and hands over, or runs one of the [`cli`] tools instead of serving.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod process;
pub mod runtime;
pub mod telemetry;
