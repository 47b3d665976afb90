//! A local target server on 127.0.0.1:0 whose behaviour tests switch, over plain HTTP or TLS.
//!
//! Raw tokio HTTP/1.1 (keep-alive), so it can misbehave in ways a framework would not allow: hang after
//! the headers, send an endless body. Fixed paths: `/` follows the switchable [`Mode`]; `/loop/a` ↔
//! `/loop/b` redirect to each other; `/redirect/N` redirects N times then answers 200; `/json` answers
//! `{"status":"ok","version":3}`; `/hello` answers "Hello"; `/t/NAME` answers 200 "ok" (hits are counted per path); `/hang` always hangs after the headers. Certificates come from [`TestCa`] (rcgen).
//! It can stop accepting new connections while serving the ones it has ([`TargetServer::stop_accepting`]),
//! refuse one source address ([`TargetServer::refuse_from`]), and tells the source addresses it saw.

#![allow(dead_code)] // each test binary uses a different part

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// 200 "Welcome".
    Ok,
    /// This status, body "error".
    Status(u16),
    /// Wait, then 200 "Welcome".
    Slow(Duration),
    /// Send 200 headers announcing 100 bytes, then nothing.
    HangAfterHeaders,
    /// 200 with a chunked body that never ends.
    EndlessBody,
}

/// Requests by path.
type Hits = Arc<Mutex<std::collections::HashMap<String, usize>>>;

/// A running target server; stops when dropped.
pub struct TargetServer {
    /// Where it listens.
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    hits: Hits,
    stop: CancellationToken,
    stop_accepting: CancellationToken,
    refused: Arc<Mutex<Option<IpAddr>>>,
    peers: Arc<Mutex<Vec<IpAddr>>>,
    tls: bool,
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TargetServer {
    /// A plain HTTP server.
    pub async fn start() -> TargetServer {
        Self::start_inner(None).await
    }

    /// An HTTPS server presenting `chain` (leaf first) with `key`.
    pub async fn start_tls(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> TargetServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        Self::start_inner(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> TargetServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let server = TargetServer {
            addr: listener.local_addr().expect("local addr"),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            connections: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(AtomicUsize::new(0)),
            stop: CancellationToken::new(),
            stop_accepting: CancellationToken::new(),
            refused: Arc::new(Mutex::new(None)),
            hits: Hits::default(),
            peers: Arc::new(Mutex::new(Vec::new())),
            tls: tls.is_some(),
        };
        let (mode, connections, requests, stop) = (
            server.mode.clone(),
            server.connections.clone(),
            server.requests.clone(),
            server.stop.clone(),
        );
        let hits = server.hits.clone();
        let (stop_accepting, refused, peers) = (
            server.stop_accepting.clone(),
            server.refused.clone(),
            server.peers.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    // The listener is closed (new connections are refused); open ones keep being served.
                    _ = stop_accepting.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                peers.lock().expect("peers lock").push(peer.ip());
                if *refused.lock().expect("refused lock") == Some(peer.ip()) {
                    drop(stream); // closed at once: this source address gets no answer
                    continue;
                }
                connections.fetch_add(1, Ordering::SeqCst);
                let (mode, requests, stop, tls) = (
                    mode.clone(),
                    (requests.clone(), hits.clone()),
                    stop.clone(),
                    tls.clone(),
                );
                tokio::spawn(async move {
                    let serve = async {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve_connection(stream, mode, requests).await;
                                }
                            }
                            None => serve_connection(stream, mode, requests).await,
                        }
                    };
                    tokio::select! { _ = stop.cancelled() => {}, _ = serve => {} }
                });
            }
        });
        server
    }

    /// Closes the listener: new connections are refused, connections already open are still served.
    pub fn stop_accepting(&self) {
        self.stop_accepting.cancel();
    }

    /// Connections from `ip` are closed as soon as they are accepted.
    pub fn refuse_from(&self, ip: IpAddr) {
        *self.refused.lock().expect("refused lock") = Some(ip);
    }

    /// Requests by path so far (every path, `/t/NAME` answering 200 "ok" for per-target counts).
    pub fn hits(&self) -> std::collections::HashMap<String, usize> {
        self.hits.lock().expect("hits lock").clone()
    }

    /// The source address of every connection accepted so far.
    pub fn peers(&self) -> Vec<IpAddr> {
        self.peers.lock().expect("peers lock").clone()
    }

    /// Switches what `/` does.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode lock") = mode;
    }

    /// `http(s)://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://{}{path}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mode: Arc<Mutex<Mode>>,
    (requests, hits): (Arc<AtomicUsize>, Hits),
) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        requests.fetch_add(1, Ordering::SeqCst);
        *hits
            .lock()
            .expect("hits lock")
            .entry(path.clone())
            .or_default() += 1;
        let current = mode.lock().expect("mode lock").clone();
        let keep_going = match (path.as_str(), current) {
            ("/", Mode::Ok) => respond(&mut stream, 200, &[], "Welcome").await,
            ("/", Mode::Status(code)) => respond(&mut stream, code, &[], "error").await,
            ("/", Mode::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                respond(&mut stream, 200, &[], "Welcome").await
            }
            ("/", Mode::HangAfterHeaders) | ("/hang", _) => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                    .await;
                let _ = stream.flush().await;
                std::future::pending::<()>().await;
                false
            }
            ("/", Mode::EndlessBody) => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                false
            }
            ("/loop/a", _) => respond(&mut stream, 302, &[("Location", "/loop/b")], "").await,
            ("/loop/b", _) => respond(&mut stream, 302, &[("Location", "/loop/a")], "").await,
            ("/json", _) => respond(&mut stream, 200, &[], r#"{"status":"ok","version":3}"#).await,
            ("/hello", _) => respond(&mut stream, 200, &[], "Hello").await,
            (p, _) if p.starts_with("/t/") => respond(&mut stream, 200, &[], "ok").await,
            (p, _) if p.starts_with("/redirect/") => {
                let n: u32 = p["/redirect/".len()..].parse().unwrap_or(0);
                if n == 0 {
                    respond(&mut stream, 200, &[], "arrived").await
                } else {
                    let next = format!("/redirect/{}", n - 1);
                    respond(&mut stream, 301, &[("Location", &next)], "").await
                }
            }
            _ => respond(&mut stream, 404, &[], "not found").await,
        };
        if !keep_going {
            return;
        }
    }
}

/// Reads until the end of a request head; returns its length (body-less requests only).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(pos + 4);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> bool {
    let mut out = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await.is_ok() && stream.flush().await.is_ok()
}

/// A test certificate authority that issues leaf certificates for 127.0.0.1 / localhost.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new CA.
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tend test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("ca cert"),
        }
    }

    /// The CA certificate in PEM, for `ca_file`.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names`, valid from `not_before` to `not_after`, signed by this CA: (chain, key).
    pub fn leaf(
        &self,
        names: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.not_before = not_before;
        params.not_after = not_after;
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone(), self.issuer.der().clone()], key)
    }

    /// A leaf valid for `days_left` more days (plus an hour, so whole days round to `days_left`).
    pub fn leaf_expiring_in(
        &self,
        days_left: i64,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let now = time::OffsetDateTime::now_utc();
        self.leaf(
            &["localhost", "127.0.0.1"],
            now - time::Duration::days(30),
            now + time::Duration::days(days_left) + time::Duration::hours(1),
        )
    }
}

/// A self-signed leaf for 127.0.0.1 that no CA vouches for.
pub fn self_signed() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("p");
    let cert = params.self_signed(&key).expect("self-signed");
    (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}
