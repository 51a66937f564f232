//! Request rate limits per client IP and per device, answered with `429 rate_limited` and a
//! `Retry-After` header. Token buckets from the `governor` crate (GCRA), keyed and in memory:
//! each node limits what reaches it.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use missive_proto::ErrorCode;

use crate::config::Config;
use crate::error::AppError;
use crate::AppState;

/// The limiters of one server.
pub struct Limits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_device: Option<DefaultKeyedRateLimiter<String>>,
    trusted_proxies: Vec<IpAddr>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_second: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Limits {
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Limits {
            per_ip: limiter(config.rate_limit_ip_per_second, config.rate_limit_ip_burst),
            per_device: limiter(
                config.rate_limit_device_per_second,
                config.rate_limit_device_burst,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// Forgets keys idle long enough to have a full bucket again (bounded memory).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_device {
            l.retain_recent();
        }
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the last
    /// address it appended to `X-Forwarded-For`.
    fn client_ip(&self, peer: IpAddr, req: &Request) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back()
            .unwrap_or(peer)
    }
}

/// The device id a request's bearer token names (not yet authenticated: an unknown id only
/// spends its own bucket, and the IP's).
fn claimed_device(req: &Request) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    let (device, _) = token.split_once('.')?;
    (device.len() == 32).then_some(device)
}

fn limited(wait: std::time::Duration) -> Response {
    let mut response = AppError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        "too many requests; retry after the time in Retry-After",
    )
    .into_response();
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from(secs.max(1)));
    response
}

/// Middleware: refuses a request over its IP's or its device's rate.
pub async fn enforce(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let limits = state.limits();
    // Each limiter's own clock: making a clock reads the CPU's features (`cpuid`), which a
    // virtual machine traps — a cost per request when done here.
    if let (Some(l), Some(ConnectInfo(peer))) = (
        &limits.per_ip,
        req.extensions().get::<ConnectInfo<SocketAddr>>(),
    ) {
        if let Err(not_until) = l.check_key(&limits.client_ip(peer.ip(), &req)) {
            return limited(not_until.wait_time_from(l.clock().now()));
        }
    }
    if let (Some(l), Some(device)) = (&limits.per_device, claimed_device(&req)) {
        if let Err(not_until) = l.check_key(&device.to_owned()) {
            return limited(not_until.wait_time_from(l.clock().now()));
        }
    }
    next.run(req).await
}
