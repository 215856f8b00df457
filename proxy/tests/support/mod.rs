//! Story-style helpers for the data plane's integration tests: real TCP backends, the real
//! listener, hand-built tables.
#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod client;
pub mod faulty;
pub mod harness;
pub mod spec;

pub use backend::{backend, Backend, Seen};
pub use client::{collect, echo, get, raw, request, websocket, Reply, Socket};
pub use harness::{proxy, TestProxy};
pub use spec::{path, table, PathExt};

use std::time::Duration;

/// How long `assert_eventually!` polls before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls an async condition until it holds or [`DEADLINE`] passes, then fails with the message.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = tokio::time::Instant::now() + $crate::support::DEADLINE;
        loop {
            if $cond {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, $($msg)+);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }};
}
