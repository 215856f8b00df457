//! Counting the backend connections opened: the measure of pool churn. Under a steady load
//! the count stays flat when idle connections are reused, and climbs with the request rate
//! when responses close their connection because the pool would not keep it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::TryFutureExt;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use prometheus::IntCounter;

/// hyper-util's connector, counting each connection it establishes (h2c clients).
#[derive(Clone)]
pub(crate) struct Counted {
    pub(crate) inner: HttpConnector,
    pub(crate) opened: IntCounter,
}

type Stream = <HttpConnector as tower_service::Service<Uri>>::Response;
type ConnectError = <HttpConnector as tower_service::Service<Uri>>::Error;

impl tower_service::Service<Uri> for Counted {
    type Response = Stream;
    type Error = ConnectError;
    // Boxed: a closure's type cannot be named here, and connecting is rare next to reusing.
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let opened = self.opened.clone();
        Box::pin(self.inner.call(uri).inspect_ok(move |_| opened.inc()))
    }
}
