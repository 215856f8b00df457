//! What the dashboard shows of each vhost's traffic over the last minute: a ring of one
//! sample per second of the counters `/metrics` already has (`dockhand_requests_total`,
//! `dockhand_request_duration_seconds`), so serving a request costs nothing more.
//!
//! [`Traffic::sample`] runs once a second on the admin side (the families are gathered from
//! the registry, as a scrape does); [`Traffic::report`] turns each vhost's ring into rates, an
//! error rate split 4xx/5xx, the p99 latency and a per-second request series for a sparkline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::proto::MetricFamily;
use prometheus::Registry;
use serde::Serialize;

/// Samples kept per vhost: a minute of seconds, plus the one the first difference needs.
const SAMPLES: usize = 61;

/// The rings of every vhost the counters know (cheap to clone).
#[derive(Clone, Default)]
pub struct Traffic {
    rings: Arc<Mutex<HashMap<String, VecDeque<Sample>>>>,
}

/// One vhost's counters at one instant.
#[derive(Clone, Debug, Default)]
struct Sample {
    at: Option<Instant>,
    requests: f64,
    client_errors: f64,
    server_errors: f64,
    /// `(upper bound, cumulative count)` of the duration histogram.
    buckets: Vec<(f64, u64)>,
}

/// One vhost's traffic over the last minute (`/api/traffic`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VhostTraffic {
    /// The vhost (`_unknown` for requests that matched none).
    pub vhost: String,
    /// Requests answered since dockhand started.
    pub requests_total: u64,
    /// Requests per second, over the minute.
    pub requests_per_second: f64,
    /// 4xx answers per second, over the minute.
    pub client_errors_per_second: f64,
    /// 5xx answers per second, over the minute.
    pub server_errors_per_second: f64,
    /// The 99th percentile of request durations in milliseconds over the minute,
    /// interpolated in the histogram's bucket as Prometheus' `histogram_quantile` does; `None`
    /// without requests.
    pub p99_ms: Option<f64>,
    /// Requests in each second of the minute, oldest first (up to 60 values).
    pub per_second: Vec<f64>,
}

impl Traffic {
    /// Samples the counters once a second until the task is dropped.
    pub async fn run(self, registry: Registry) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            self.sample(&registry.gather(), Instant::now());
        }
    }

    /// Adds a sample of every vhost in `families` taken at `at`; vhosts no longer there are
    /// forgotten.
    fn sample(&self, families: &[MetricFamily], at: Instant) {
        let mut now: HashMap<String, Sample> = HashMap::new();
        for family in families {
            match family.name() {
                "dockhand_requests_total" => {
                    for metric in family.get_metric() {
                        let (mut vhost, mut class) = ("", "");
                        for label in metric.get_label() {
                            match label.name() {
                                "vhost" => vhost = label.value(),
                                "class" => class = label.value(),
                                _ => {}
                            }
                        }
                        let value = metric.get_counter().get_value();
                        let sample = now.entry(vhost.to_owned()).or_default();
                        sample.requests += value;
                        match class {
                            "4xx" => sample.client_errors += value,
                            "5xx" => sample.server_errors += value,
                            _ => {}
                        }
                    }
                }
                "dockhand_request_duration_seconds" => {
                    for metric in family.get_metric() {
                        let vhost = (metric.get_label().iter())
                            .find(|l| l.name() == "vhost")
                            .map_or("", |l| l.value());
                        let buckets = (metric.get_histogram().get_bucket().iter())
                            .map(|b| (b.upper_bound(), b.cumulative_count()))
                            .collect();
                        now.entry(vhost.to_owned()).or_default().buckets = buckets;
                    }
                }
                _ => {}
            }
        }
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        rings.retain(|vhost, _| now.contains_key(vhost));
        for (vhost, mut sample) in now {
            sample.at = Some(at);
            let ring = rings.entry(vhost).or_default();
            if ring.len() == SAMPLES {
                ring.pop_front();
            }
            ring.push_back(sample);
        }
    }

    /// Every vhost's last minute, sorted by vhost.
    pub fn report(&self) -> Vec<VhostTraffic> {
        let rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report: Vec<VhostTraffic> = (rings.iter())
            .map(|(vhost, ring)| summarize(vhost, ring))
            .collect();
        report.sort_by(|a, b| a.vhost.cmp(&b.vhost));
        report
    }
}

fn summarize(vhost: &str, ring: &VecDeque<Sample>) -> VhostTraffic {
    let newest = ring.back().cloned().unwrap_or_default();
    let oldest = ring.front().cloned().unwrap_or_default();
    let seconds = match (oldest.at, newest.at) {
        (Some(from), Some(to)) => (to - from).as_secs_f64(),
        _ => 0.0,
    };
    let rate = |new: f64, old: f64| {
        if seconds > 0.0 {
            (new - old).max(0.0) / seconds
        } else {
            0.0
        }
    };
    let per_second = (ring.iter().zip(ring.iter().skip(1)))
        .map(|(a, b)| (b.requests - a.requests).max(0.0))
        .collect();
    VhostTraffic {
        vhost: vhost.to_owned(),
        requests_total: newest.requests as u64,
        requests_per_second: rate(newest.requests, oldest.requests),
        client_errors_per_second: rate(newest.client_errors, oldest.client_errors),
        server_errors_per_second: rate(newest.server_errors, oldest.server_errors),
        p99_ms: quantile(0.99, &oldest.buckets, &newest.buckets).map(|s| s * 1000.0),
        per_second,
    }
}

/// The `q` quantile of the observations between two cumulative histograms (`before` may be
/// empty: everything counts), interpolated linearly inside its bucket; the `+Inf` bucket
/// answers with the largest finite bound, as `histogram_quantile` does.
fn quantile(q: f64, before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let counts: Vec<(f64, u64)> = (after.iter().enumerate())
        .map(|(i, &(bound, count))| {
            let earlier = before.get(i).map_or(0, |&(_, c)| c);
            (bound, count.saturating_sub(earlier))
        })
        .collect();
    // prometheus' histograms leave out the +Inf bucket; the sample count would be its value,
    // which the last finite bucket approximates (a request over 60 s is a timeout anyway).
    let total = counts.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(bound, count) in &counts {
        if count as f64 >= rank {
            let inside = (count - below) as f64;
            let fraction = if inside > 0.0 {
                (rank - below as f64) / inside
            } else {
                1.0
            };
            return Some(lower + (bound - lower) * fraction);
        }
        (lower, below) = (bound, count);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

    use super::*;

    #[test]
    fn rates_errors_p99_and_the_per_second_series_come_from_two_samples() {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("dockhand_requests_total", "r"),
            &["vhost", "class", "method"],
        )
        .unwrap();
        let duration = HistogramVec::new(
            HistogramOpts::new("dockhand_request_duration_seconds", "d")
                .buckets(vec![0.01, 0.1, 1.0]),
            &["vhost"],
        )
        .unwrap();
        registry.register(Box::new(requests.clone())).unwrap();
        registry.register(Box::new(duration.clone())).unwrap();
        let traffic = Traffic::default();
        let start = Instant::now();
        requests
            .with_label_values(&["a.test", "2xx", "GET"])
            .inc_by(5);
        traffic.sample(&registry.gather(), start);
        requests
            .with_label_values(&["a.test", "2xx", "GET"])
            .inc_by(90);
        requests
            .with_label_values(&["a.test", "4xx", "GET"])
            .inc_by(6);
        requests
            .with_label_values(&["a.test", "5xx", "GET"])
            .inc_by(4);
        for _ in 0..99 {
            duration.with_label_values(&["a.test"]).observe(0.005);
        }
        duration.with_label_values(&["a.test"]).observe(0.5);
        traffic.sample(&registry.gather(), start + Duration::from_secs(2));

        let report = traffic.report();
        assert_eq!(report.len(), 1);
        let a = &report[0];
        assert_eq!(a.vhost, "a.test");
        assert_eq!(a.requests_total, 105);
        assert_eq!(a.requests_per_second, 50.0);
        assert_eq!(a.client_errors_per_second, 3.0);
        assert_eq!(a.server_errors_per_second, 2.0);
        assert_eq!(a.per_second, vec![100.0]);
        // 99 of 100 under 10 ms: the 99th is at the top of the first bucket.
        let p99 = a.p99_ms.unwrap();
        assert!((p99 - 10.0).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket_and_is_none_without_requests() {
        let after = [(0.1, 50), (1.0, 100)];
        assert_eq!(quantile(0.5, &[], &after), Some(0.1));
        let p75 = quantile(0.75, &[], &after).unwrap();
        assert!((p75 - 0.55).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(0.99, &after, &after), None);
    }
}
