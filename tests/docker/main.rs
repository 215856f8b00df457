//! dockhand against the real Docker engine: one binary, one module per story.
//!
//! Every test starts its own dockhand (as a host process unless the story is about running in a
//! container) and its own uniquely named containers, so tests run in parallel without sharing
//! state; all of them see every container on the engine, which is exactly what production does.

mod support;

mod cli;
mod dashboard;
mod edge;
mod engine;
mod headers;
mod https;
mod in_container;
mod lifecycle;
mod metrics;
mod operations;
mod parity;
mod routing;
mod stack;
mod zero_downtime;
