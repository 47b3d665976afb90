//! A check as a new visitor sees the site: resolve, connect (from `source_address` if set), handshake TLS, send
//! one HTTP/1.1 request on that connection, read the answer, close. Nothing is pooled or resumed, so a server
//! that stops accepting connections is down at once and the certificate checked is the one presented now.
//!
//! Each step enters its [`Phase`] on the check's stopwatch; a failure is reported in the phase it happened in.
//! The connection's I/O is driven in the check's own task (no task is spawned per check), so when the timeout
//! drops the check, the socket goes with it.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use super::phase::{Down, Partial, Phase, Stopwatch};
use super::tls;
use super::transport::{Capped, Head, Transport};

/// Resolves `host` and connects to it (from `source`, when set), trying each address of the right family
/// in turn. The stopwatch goes from DNS to connect.
pub(super) async fn dial(
    host: &str,
    port: u16,
    source: Option<IpAddr>,
    watch: &mut Stopwatch,
) -> Result<TcpStream, Down> {
    let resolved = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| watch.fail(tls::describe_io(&e)))?;
    let addrs: Vec<SocketAddr> = resolved
        .filter(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .collect();
    if addrs.is_empty() {
        let family = match source {
            Some(IpAddr::V4(_)) => "an IPv4 address (source_address is IPv4)",
            Some(IpAddr::V6(_)) => "an IPv6 address (source_address is IPv6)",
            None => "an address",
        };
        return Err(watch.fail(format!("{host} has no {family}")));
    }
    watch.enter(Phase::Connect);
    let mut last = None;
    for addr in addrs {
        match connect(addr, source).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(watch.fail(last.unwrap_or_else(|| "no address to connect to".into())))
}

async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| tls::describe_io(&e))?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
            format!(
                "cannot use source address {source}: {}",
                tls::describe_io(&e)
            )
        })?;
    }
    socket.connect(addr).await.map_err(|e| tls::describe_io(&e))
}

/// The TLS handshake on `tcp`: verifies chain and host name and notes the leaf's days to expiry.
pub(super) async fn handshake(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
    partial: &mut Partial,
    now: SystemTime,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Down> {
    partial.watch.enter(Phase::Tls);
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        partial
            .watch
            .fail(format!("{host:?} is not a valid TLS server name"))
    })?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| partial.watch.fail(tls::describe_io(&e)))?;
    let (_, session) = stream.get_ref();
    partial.cert_days = session
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| tls::days_until_expiry(der, now));
    Ok(stream)
}

/// Any stream a request can go over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Connection = http1::Connection<TokioIo<Box<dyn Io>>, Empty<Bytes>>;

/// A fresh connection per request.
pub(super) struct Fresh<'a> {
    /// Fresh HTTPS connections' TLS settings (the checker's).
    pub(super) https: &'a Arc<rustls::ClientConfig>,
    pub(super) source: Option<IpAddr>,
    pub(super) now: SystemTime,
}

/// The unread rest of a response on its own connection, which must be driven while the body is read.
pub(super) struct Rest {
    body: Incoming,
    connection: Pin<Box<Connection>>,
    closed: bool,
}

impl Transport for Fresh<'_> {
    type Rest = Rest;

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: Option<&HeaderMap>,
        partial: &mut Partial,
    ) -> Result<Head<Rest>, Down> {
        let host = url
            .host_str()
            .ok_or_else(|| partial.watch.fail(format!("{url} has no host")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| partial.watch.fail(format!("{url} has no port")))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = dial(bare, port, self.source, &mut partial.watch).await?;
        let stream: Box<dyn Io> = if url.scheme() == "https" {
            let https = self.https.clone();
            Box::new(handshake(https, bare, tcp, partial, self.now).await?)
        } else {
            Box::new(tcp)
        };
        partial.watch.enter(Phase::Ttfb);
        let request = request(method, url, headers).map_err(|e| partial.watch.fail(e))?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| partial.watch.fail(describe_hyper(&e)))?;
        let mut connection = Box::pin(connection);
        let mut closed = false;
        let response = {
            let mut sending = std::pin::pin!(sender.send_request(request));
            tokio::select! {
                biased;
                r = &mut sending => r,
                // The connection may finish first (a short answer to `Connection: close`): the answer, or
                // the error that ended it, is then waiting for the request.
                _ = &mut connection => { closed = true; sending.await }
            }
        }
        .map_err(|e| partial.watch.fail(describe_hyper(&e)))?;
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        Ok(Head {
            status: response.status().as_u16(),
            location,
            rest: Rest {
                body: response.into_body(),
                connection,
                closed,
            },
        })
    }

    async fn body(
        &self,
        mut rest: Rest,
        cap: usize,
        partial: &mut Partial,
    ) -> Result<(Vec<u8>, bool), Down> {
        let mut body = Capped::new(cap);
        loop {
            let frame = if rest.closed {
                rest.body.frame().await
            } else {
                tokio::select! {
                    biased;
                    frame = rest.body.frame() => frame,
                    _ = &mut rest.connection => { rest.closed = true; continue; }
                }
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| partial.watch.fail(describe_hyper(&e)))?;
            if let Ok(data) = frame.into_data()
                && !body.push(&data)
            {
                break;
            }
        }
        Ok(body.finish())
    }
}

/// The request: origin-form target, `Host`, tend's user agent, `Connection: close` (one request per
/// connection), and the configured headers when the URL is the target's own origin.
fn request(
    method: &Method,
    url: &Url,
    headers: Option<&HeaderMap>,
) -> Result<hyper::Request<Empty<Bytes>>, String> {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(format!("{url} has no host")),
    };
    let mut request = hyper::Request::builder()
        .method(method.clone())
        .uri(target)
        .body(Empty::new())
        .map_err(|e| format!("cannot build the request for {url}: {e}"))?;
    let h = request.headers_mut();
    if let Some(extra) = headers {
        h.extend(extra.clone());
    }
    let host = HeaderValue::from_str(&host).map_err(|e| format!("bad host {host:?}: {e}"))?;
    h.insert(header::HOST, host);
    h.entry(header::USER_AGENT)
        .or_insert(HeaderValue::from_static(super::pooled::USER_AGENT));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// A short reason for a hyper error: the innermost cause a person can act on.
fn describe_hyper(e: &hyper::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return tls::describe_io(io);
        }
        source = err.source();
    }
    if e.is_incomplete_message() || e.is_canceled() {
        "connection closed early".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_origin_form_with_host_and_closes() {
        let url = Url::parse("http://example.com:8080/a/b?c=1").expect("url");
        let mut extra = HeaderMap::new();
        extra.insert("x-token", HeaderValue::from_static("t"));
        let r = request(&Method::GET, &url, Some(&extra)).expect("request");
        assert_eq!(r.uri().to_string(), "/a/b?c=1");
        assert_eq!(r.headers()[header::HOST], "example.com:8080");
        assert_eq!(r.headers()[header::CONNECTION], "close");
        assert_eq!(r.headers()["x-token"], "t");
        let url = Url::parse("https://example.com/").expect("url");
        let r = request(&Method::HEAD, &url, None).expect("request");
        assert_eq!(r.headers()[header::HOST], "example.com");
        assert!(r.headers().get("x-token").is_none());
    }
}
