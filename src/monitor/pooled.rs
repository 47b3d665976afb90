//! `reuse_connections = true`: HTTP checks through one shared, pooled client (reqwest), as tend did before
//! checks became new visitors. Cheaper per check, but it hides what a new visitor would meet: a server that
//! stops accepting connections stays "up" while an old keep-alive connection still answers, and the
//! certificate checked is the one from whenever the pooled connection was made. DNS, connect and TLS are not
//! told apart on this path: their time, when a new connection is made, counts in the time to first byte.

use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, Url};

use super::phase::{Down, Partial, Phase};
use super::tls;
use super::transport::{Capped, CheckerError, Head, Transport};

/// The `User-Agent` of every check.
pub const USER_AGENT: &str = concat!("tend-monitor/", env!("CARGO_PKG_VERSION"));

/// The shared client: no redirects of its own (the check follows them), TLS details kept, idle connections
/// kept two minutes, on the checker's TLS configuration (the same trust as fresh checks).
pub(super) fn client(tls: rustls::ClientConfig) -> Result<reqwest::Client, CheckerError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(120))
        .tcp_nodelay(true)
        .use_preconfigured_tls(tls)
        .build()
        .map_err(CheckerError::Http)
}

/// Requests through the checker's pooled client.
pub(super) struct Pooled<'a>(pub(super) &'a reqwest::Client);

impl Transport for Pooled<'_> {
    type Rest = reqwest::Response;

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: Option<&HeaderMap>,
        partial: &mut Partial,
    ) -> Result<Head<reqwest::Response>, Down> {
        partial.watch.enter(Phase::Ttfb);
        let mut request = self.0.request(method.clone(), url.clone());
        if let Some(headers) = headers {
            request = request.headers(headers.clone());
        }
        let response = request.send().await.map_err(|e| describe(&e, partial))?;
        let now = std::time::SystemTime::now();
        if partial.cert_days.is_none() {
            partial.cert_days = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate())
                .and_then(|der| tls::days_until_expiry(der, now));
        }
        Ok(Head {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string),
            rest: response,
        })
    }

    async fn body(
        &self,
        mut response: reqwest::Response,
        cap: usize,
        partial: &mut Partial,
    ) -> Result<(Vec<u8>, bool), Down> {
        let mut body = Capped::new(cap);
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e, partial))? {
            if !body.push(&chunk) {
                break;
            }
        }
        Ok(body.finish())
    }
}

/// A reqwest error as a down reason in its phase: connect and TLS failures are told apart by their cause.
fn describe(e: &reqwest::Error, partial: &Partial) -> Down {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        if let Some(rustls) = err.downcast_ref::<rustls::Error>() {
            return Down::at(Phase::Tls, tls::describe_rustls(rustls));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let reason = tls::describe_io(io);
            let phase = if e.is_connect() && !reason.starts_with("certificate") {
                Phase::Connect
            } else if reason.starts_with("certificate") || reason.starts_with("TLS") {
                Phase::Tls
            } else {
                partial.watch.current()
            };
            return Down::at(phase, reason);
        }
        innermost = err.to_string();
        source = err.source();
    }
    if e.is_connect() {
        Down::at(Phase::Connect, innermost)
    } else {
        partial.watch.fail(innermost)
    }
}
