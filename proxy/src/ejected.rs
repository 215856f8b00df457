//! `dockhand_backends_ejected{vhost}` and `dockhand_backend_up{vhost,backend}`, computed from
//! the current table when scraped.
//!
//! An ejection ends by time passing, with no event to update a gauge on, so the count is taken
//! at scrape time instead: one walk over the table's targets, a few atomic loads each.
//!
//! The gauge reads the route table, which itself holds the metric handles of its vhosts, so it
//! lives above both, and whoever builds the metrics and the table registers it once both exist
//! (see [`register_ejected_gauge`]).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};

use crate::health;
use crate::table::TableReader;

/// Registers `dockhand_backends_ejected{vhost}` in `registry`: the backends that passive health
/// currently sets aside, by vhost, in whatever table `table` holds when `/metrics` is scraped;
/// and `dockhand_backend_up{vhost,backend}`: 1 for each backend (by container or task name)
/// that may get requests (it has an address, passes its health check, is not ejected), else 0.
///
/// Call it once, where the registry, the [`Metrics`](crate::Metrics) and the shared table are
/// built (nothing registers it by default: [`Proxy::new`](crate::Proxy::new) does not). Fails
/// when the gauge is already registered in `registry`.
pub fn register_ejected_gauge(
    registry: &Registry,
    table: TableReader,
) -> Result<(), prometheus::Error> {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "dockhand_backends_ejected",
            "Backends currently set aside by passive health, by vhost.",
        ),
        &["vhost"],
    )?;
    let up = IntGaugeVec::new(
        Opts::new(
            "dockhand_backend_up",
            "1 when the backend may get requests (an address, its health check passing, not \
             ejected), else 0; by vhost and backend (container or task name).",
        ),
        &["vhost", "backend"],
    )?;
    registry.register(Box::new(Ejected { gauge, up, table }))
}

/// The collector: the gauge is refilled from the table at each scrape.
struct Ejected {
    gauge: IntGaugeVec,
    up: IntGaugeVec,
    table: TableReader,
}

impl Collector for Ejected {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.gauge.desc();
        descs.extend(self.up.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Vhosts of older tables are dropped: only the current one is reported.
        self.gauge.reset();
        self.up.reset();
        let table = self.table.load();
        let now = health::now_ms();
        for (vhost, ejected) in table.ejected(now) {
            let ejected = i64::try_from(ejected).unwrap_or(i64::MAX);
            self.gauge.with_label_values(&[vhost]).set(ejected);
        }
        for ((vhost, backend), up) in table.backends_up(now) {
            self.up
                .with_label_values(&[vhost, backend])
                .set(i64::from(up));
        }
        let mut families = self.gauge.collect();
        families.extend(self.up.collect());
        families
    }
}
