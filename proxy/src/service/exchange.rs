//! Sending a routed request to its candidates, retrying what is safe to retry, and handing
//! protocol upgrades over to a tunnel.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use http::request::Parts;
use http::uri::{self, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::time::{Instant, Sleep};

use super::order::Order;
use super::response::client_response;
use super::routing::Plan;
use super::{Answer, Conn, Shared};
use crate::conn::ConnState;
use crate::error::ErrorKind;
use crate::metrics::{RetryReason, VhostMetrics};
use crate::spec::Proto;
use crate::table::{InFlight, Route, Target};
use crate::tunnel::Tunnel;
use crate::upstream::{Lease, Pending, Reclaim, SendError, Upload, Upstream, UpstreamBody};

/// Sends the request to the plan's candidates until one answers with a response head.
///
/// A connect failure moves on to the next candidate for any method: the request was not sent.
/// A connection that broke before any answer (reset, closed, a stale pooled connection) is
/// retried on the route's other backends, each at most once (nginx's `proxy_next_upstream`),
/// when the method is idempotent, the body can still be sent (none, or not read yet: nothing is
/// buffered) and no upgrade was asked for: when replicas stop together, one retry can land on
/// another dying one. A route with a single backend retries it once on a fresh connection.
/// Anything else is final. At most one attempt per target, plus that one fresh retry; ejected
/// backends are tried last, not never (see [`Order`]).
///
/// An exchange that failed because the client's body did (malformed, client gone, no data for
/// `body_read_timeout`) answers the client's error instead (400, 408) and blames no backend.
pub(super) async fn send(
    shared: &Shared,
    upstream: &Upstream,
    conn: &Conn,
    plan: Plan,
    parts: Parts,
    body: Incoming,
) -> Answer {
    let (route, metrics, mut upgrade) = (plan.route, plan.metrics, plan.upgrade);
    let replayable = upgrade.is_none() && idempotent(&parts.method);
    let max_attempts = route.targets.len() + usize::from(replayable);
    let mut order = Order::new(plan.candidates, replayable);
    let mut headers = Some(parts.headers);
    // hyper's record of the client's header-name case (HTTP/1 to HTTP/1 only: an HTTP/2 side
    // has lower-case names by definition, and an HTTP/2 request's extensions, `:protocol`
    // included, mean nothing to a backend).
    let mut extensions =
        (parts.version < Version::HTTP_2 && route.proto != Proto::H2c).then_some(parts.extensions);
    let mut pending = Some(Pending::new(body));
    let mut failure = ErrorKind::NoBackend;
    let mut retry: Option<RetryReason> = None;
    for attempt in 0..max_attempts {
        let (Some((index, target)), Some(next)) = (order.next(&route), pending.take()) else {
            break;
        };
        let reason = retry.take();
        if let Some(reason) = reason {
            metrics.retry(reason);
        }
        let (body, reclaim) = next.attempt(shared.config.body_read_timeout);
        let head = head(&mut headers, attempt + 1 < max_attempts);
        // The first attempt only: cloning the case map for a retry that almost never comes
        // cost ~2k instructions per request (benches/results/RESULTS.md); a retried request's
        // names go out in Title-Case.
        let extensions = extensions.take();
        let Some(mut req) = request(
            &route,
            target,
            &parts.method,
            &plan.path_and_query,
            head,
            body,
        ) else {
            return Answer::Error(ErrorKind::BadRequest);
        };
        if let Some(extensions) = extensions {
            *req.extensions_mut() = extensions;
        }
        let in_flight = target.state.begin();
        // After a reset the backend is tried again only on a new connection.
        let fresh = matches!(reason, Some(RetryReason::Reset));
        // Boxed: the exchange's state is most of a request's, and every enclosing future
        // would otherwise carry (and copy as it moves) another 1.6 KiB.
        let sent = Box::pin(upstream.send(target.addr, route.proto, route.keepalive, req, fresh));
        let err = match head_within(shared.config.response_timeout, &reclaim, sent).await {
            Some(Ok((response, lease))) => {
                target.state.connected();
                let upgrade = upgrade.take();
                let upgraded = Upgrade {
                    conn,
                    client: upgrade,
                    idle_timeout: shared.config.tunnel_idle_timeout,
                };
                return answer(upgraded, response, lease, target.addr, in_flight);
            }
            Some(Err(err)) => err,
            None => return timed_out(&reclaim, &metrics),
        };
        let picked = (index, target);
        let (kind, next_try) = failed(shared, &metrics, &route, &mut order, picked, &reclaim, &err);
        failure = kind;
        let Some(reason) = next_try else {
            return Answer::Error(kind);
        };
        retry = Some(reason);
        pending = reclaim.reclaim();
    }
    Answer::Error(failure)
}

/// The request for one attempt on `target`, or `None` when its URI cannot be built.
fn request(
    route: &Route,
    target: &Target,
    method: &Method,
    path_and_query: &uri::PathAndQuery,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Option<Request<UpstreamBody>> {
    let uri = upstream_uri(route.proto, target, path_and_query)?;
    let mut req = Request::new(body);
    (*req.method_mut(), *req.uri_mut()) = (method.clone(), uri);
    *req.version_mut() = version(route.proto);
    *req.headers_mut() = headers;
    Some(req)
}

/// The answer when the response head did not come in time.
fn timed_out(reclaim: &Reclaim, metrics: &VhostMetrics) -> Answer {
    // A body that failed just as the clock ran out is the news, not the clock.
    let kind = reclaim.client_fault().unwrap_or(ErrorKind::UpstreamTimeout);
    if kind.is_upstream() {
        metrics.error(kind);
    }
    Answer::Error(kind)
}

/// Accounts for the failed exchange `err` with the backend `target` (number `index` of the
/// route) in the metrics, passive health and the order of the next targets, and says what the
/// request fails with and whether, and why, it may be sent to another.
fn failed(
    shared: &Shared,
    metrics: &VhostMetrics,
    route: &Route,
    order: &mut Order,
    (index, target): (usize, &Target),
    reclaim: &Reclaim,
    err: &SendError,
) -> (ErrorKind, Option<RetryReason>) {
    // The client's body failed, and the exchange with it: the client's fault (400, 408), so no
    // upstream error, no ejection, no retry.
    if let Some(fault) = reclaim.client_fault() {
        tracing::debug!(backend = %target.addr, error = ?err, kind = fault.label(), "client request body failed");
        return (fault, None);
    }
    let failure = err.kind();
    tracing::warn!(backend = %target.addr, error = ?err, kind = failure.label(), "upstream request failed");
    metrics.error(failure);
    if failure.is_connect() {
        connect_failed(shared, metrics, target);
        order.connect_failed(index);
        return (failure, Some(RetryReason::Connect));
    }
    target.state.connected();
    if !order.replayable || !err.broke_before_answer() {
        return (failure, None);
    }
    order.after_reset(route, index);
    (failure, Some(RetryReason::Reset))
}

/// The outcome of `sent`, or `None` once the backend has kept the response head waiting for
/// `timeout`. The backend's time starts when it has the whole request (nginx's
/// `proxy_read_timeout` too): while the client is still sending its body, a wait is the
/// client's, bounded by the body's own read timeout, so a slow upload or a stalled client is
/// never taken for a slow backend.
async fn head_within<F: Future>(timeout: Duration, body: &Reclaim, sent: F) -> Option<F::Output> {
    let mut sent = pin!(sent);
    let mut expiry = pin!(tokio::time::sleep(timeout));
    let mut seen = body.upload();
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = sent.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        loop {
            let upload = body.upload();
            // The body just ended (seen here at once for HTTP/1.1, whose connection this task
            // drives; at the latest on expiry for h2c): the backend's time starts now.
            let ended = upload == Upload::Sent && seen != Upload::Sent;
            seen = upload;
            if ended {
                restart(expiry.as_mut(), timeout);
            }
            if expiry.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if upload != Upload::Waiting && !ended {
                return Poll::Ready(None);
            }
            restart(expiry.as_mut(), timeout);
        }
    })
    .await
}

/// Sets `sleep` to expire `timeout` from now.
fn restart(sleep: Pin<&mut Sleep>, timeout: Duration) {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    let now = Instant::now();
    // A timeout too long to add to the clock is as good as a year.
    sleep.reset(now.checked_add(timeout).unwrap_or(now + YEAR));
}

/// The HTTP version spoken to backends of `proto`.
fn version(proto: Proto) -> Version {
    match proto {
        Proto::Http | Proto::Https => Version::HTTP_11,
        Proto::H2c => Version::HTTP_2,
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2); `TRACE` never gets this far.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// The request headers for one attempt: cloned while another attempt may need them.
fn head(headers: &mut Option<HeaderMap>, more: bool) -> HeaderMap {
    let head = if more {
        headers.clone()
    } else {
        headers.take()
    };
    head.unwrap_or_default()
}

/// Records a connect failure in passive health, counting and logging an ejection.
fn connect_failed(shared: &Shared, metrics: &VhostMetrics, target: &Target) {
    if target.state.connect_failed(&shared.eject) {
        metrics.ejection();
        tracing::warn!(
            backend = %target.addr,
            failures = target.state.consecutive_failures(),
            ejected_for = ?target.state.ejected_for(),
            "backend ejected after repeated connect failures"
        );
    }
}

/// The request target: origin-form for HTTP/1.1 (the connection already goes to the backend),
/// absolute for h2c (whose `:scheme` and `:authority` hyper takes from it).
fn upstream_uri(proto: Proto, target: &Target, path_and_query: &uri::PathAndQuery) -> Option<Uri> {
    if proto != Proto::H2c {
        return Some(Uri::from(path_and_query.clone()));
    }
    let mut parts = uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(target.authority.clone());
    parts.path_and_query = Some(path_and_query.clone());
    Uri::from_parts(parts).ok()
}

/// What bridging a `101` needs: the client connection, its side of the switch (when it asked
/// for one) and the tunnel's idle timeout.
struct Upgrade<'a> {
    conn: &'a Conn,
    client: Option<OnUpgrade>,
    idle_timeout: Duration,
}

/// Accepts a backend response; a `101` is bridged to the client when the client asked for it.
fn answer(
    upgrade: Upgrade<'_>,
    response: Response<Incoming>,
    lease: Option<Lease>,
    addr: SocketAddr,
    in_flight: InFlight,
) -> Answer {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Answer::Upstream {
            response: client_response(response),
            lease,
            addr,
            in_flight: Some(in_flight),
        };
    }
    let (Some(client), Some(lease)) = (upgrade.client, lease) else {
        // Not asked for, or over h2c (where no 101 exists).
        tracing::warn!(backend = %addr, "backend switched protocols without being asked");
        return Answer::Error(ErrorKind::UpstreamReset);
    };
    let conn = upgrade.conn;
    conn.tunnels.open(Tunnel {
        client,
        backend: lease.upgraded(),
        addr,
        in_flight,
        hold: conn.state.as_ref().map(ConnState::tunnel_opened),
        idle_timeout: upgrade.idle_timeout,
    });
    Answer::Upstream {
        response: client_response(response),
        lease: None,
        addr,
        in_flight: None,
    }
}
