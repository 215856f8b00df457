//! `dockhand_backends_ejected{vhost}`, computed from the current table when scraped.
//!
//! An ejection ends by time passing, with no event to update a gauge on, so the count is taken
//! at scrape time instead: one walk over the table's targets, a few atomic loads each.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::health;
use crate::table::TableReader;

/// The collector (cheap to clone: the registry holds one clone, [`super::Metrics`] another).
#[derive(Clone)]
pub(super) struct Ejected {
    gauge: IntGaugeVec,
    table: Arc<Mutex<Option<TableReader>>>,
}

impl Ejected {
    pub(super) fn new() -> Result<Ejected, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "dockhand_backends_ejected",
                "Backends currently set aside by passive health, by vhost.",
            ),
            &["vhost"],
        )?;
        Ok(Ejected {
            gauge,
            table: Arc::new(Mutex::new(None)),
        })
    }

    pub(super) fn watch(&self, table: TableReader) {
        // A panic elsewhere while holding the lock leaves a plain `Option`: still usable.
        *self.table.lock().unwrap_or_else(PoisonError::into_inner) = Some(table);
    }
}

impl Collector for Ejected {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let table = self
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Vhosts of older tables are dropped: only the current one is reported.
        self.gauge.reset();
        if let Some(table) = table {
            let table = table.load();
            for (vhost, ejected) in table.ejected(health::now_ms()) {
                let ejected = i64::try_from(ejected).unwrap_or(i64::MAX);
                self.gauge.with_label_values(&[vhost]).set(ejected);
            }
        }
        self.gauge.collect()
    }
}
