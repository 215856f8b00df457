//! The read half of the served table.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::RouteTable;

/// A read-only handle on the table being served: requests, the TLS server and the admin
/// listener [`load`](TableReader::load) it; only [`crate::Publisher`] replaces it.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct TableReader(Arc<ArcSwap<RouteTable>>);

impl TableReader {
    /// The reader of the table that `cell` holds; the publisher keeps the write half.
    pub(crate) fn new(cell: Arc<ArcSwap<RouteTable>>) -> TableReader {
        TableReader(cell)
    }

    /// A reader of `table` alone, which nothing will replace: for tests and tools that serve a
    /// hand-built table.
    pub fn fixed(table: RouteTable) -> TableReader {
        TableReader(Arc::new(ArcSwap::from_pointee(table)))
    }

    /// The table served now. Load it once per request and never hold the guard across an
    /// `.await`: a held guard delays the release of a replaced table.
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.0.load()
    }
}

impl Default for TableReader {
    /// A reader of [`RouteTable::empty`] alone.
    fn default() -> TableReader {
        TableReader::fixed(RouteTable::empty())
    }
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TableReader").field(&**self.load()).finish()
    }
}
