//! The pre-resolved metric handles of one vhost: a request records into cells resolved on first
//! use, so the label values are hashed once per vhost and cell, never per request.

use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus::{Histogram, IntCounter};

use super::Families;
use crate::error::ErrorKind;

/// `method` label values; anything else is `other`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// `class` label values.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a request was sent to another backend: the `reason` label of `dockhand_retries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// The previous backend could not be connected to; any method.
    Connect,
    /// The previous connection broke before a response head; idempotent methods only.
    Reset,
}

impl RetryReason {
    const ALL: [RetryReason; 2] = [RetryReason::Connect, RetryReason::Reset];

    const fn label(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect",
            RetryReason::Reset => "reset",
        }
    }
}

/// Pre-resolved handles of one vhost.
pub(crate) struct VhostMetrics {
    name: String,
    families: Families,
    duration: OnceLock<Histogram>,
    requests: [[OnceLock<IntCounter>; METHODS.len()]; CLASSES.len()],
    errors: [OnceLock<IntCounter>; ErrorKind::ALL.len()],
    retries: [OnceLock<IntCounter>; RetryReason::ALL.len()],
    ejections: OnceLock<IntCounter>,
}

impl VhostMetrics {
    pub(super) fn new(families: &Families, name: &str) -> VhostMetrics {
        VhostMetrics {
            name: name.to_owned(),
            families: families.clone(),
            duration: OnceLock::new(),
            requests: Default::default(),
            errors: Default::default(),
            retries: Default::default(),
            ejections: OnceLock::new(),
        }
    }

    /// The `vhost` label value.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Counts one answered request and observes its duration.
    pub(crate) fn request(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        let m = method_index(method);
        let c = class_index(status);
        self.requests[c][m]
            .get_or_init(|| {
                // Three labels for a three-label family: cannot panic.
                self.families
                    .requests
                    .with_label_values(&[&self.name, CLASSES[c], METHODS[m]])
            })
            .inc();
        self.duration
            // One label for a one-label family: cannot panic.
            .get_or_init(|| self.families.duration.with_label_values(&[&self.name]))
            .observe(elapsed.as_secs_f64());
    }

    /// Removes the series this vhost created, once it is gone from the table, so that vhost
    /// churn does not grow `/metrics` forever. Requests still finishing on an old table then
    /// count into detached handles, which is harmless.
    pub(super) fn remove_series(&self) {
        let name = self.name.as_str();
        if self.duration.get().is_some() {
            let _ = self.families.duration.remove_label_values(&[name]);
        }
        for (c, row) in self.requests.iter().enumerate() {
            for (m, cell) in row.iter().enumerate() {
                if cell.get().is_some() {
                    let _ = self
                        .families
                        .requests
                        .remove_label_values(&[name, CLASSES[c], METHODS[m]]);
                }
            }
        }
        for (reason, cell) in RetryReason::ALL.iter().zip(&self.retries) {
            if cell.get().is_some() {
                let _ = self
                    .families
                    .retries
                    .remove_label_values(&[name, reason.label()]);
            }
        }
        if self.ejections.get().is_some() {
            let _ = self.families.ejections.remove_label_values(&[name]);
        }
        for (kind, cell) in ErrorKind::ALL.iter().zip(&self.errors) {
            if cell.get().is_some() {
                let _ = self
                    .families
                    .errors
                    .remove_label_values(&[name, kind.label()]);
            }
        }
    }

    /// Counts one upstream failure.
    pub(crate) fn error(&self, kind: ErrorKind) {
        self.errors[kind.index()]
            .get_or_init(|| {
                // Two labels for a two-label family: cannot panic.
                self.families
                    .errors
                    .with_label_values(&[&self.name, kind.label()])
            })
            .inc();
    }
}

impl VhostMetrics {
    /// Counts one request sent again to another backend.
    pub(crate) fn retry(&self, reason: RetryReason) {
        self.retries[reason as usize]
            .get_or_init(|| {
                // Two labels for a two-label family: cannot panic.
                self.families
                    .retries
                    .with_label_values(&[&self.name, reason.label()])
            })
            .inc();
    }

    /// Counts one backend ejected by passive health while serving this vhost.
    pub(crate) fn ejection(&self) {
        self.ejections
            // One label for a one-label family: cannot panic.
            .get_or_init(|| self.families.ejections.with_label_values(&[&self.name]))
            .inc();
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

pub(super) fn class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}
