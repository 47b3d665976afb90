//! The etcd client as tend uses it: built from `[cluster]`, pinned to one endpoint at a time, and one
//! wrapper that bounds every call.
//!
//! One client per endpoint, one in use: a call that fails at the transport level (or gets no answer)
//! moves every later call to the next endpoint, the way etcd's own Go client pins and fails over. (The
//! crate's balanced channel keeps sending a share of calls to a dead member, preferring it because it has
//! nothing in flight.) Every unary call goes through [`Etcd::call`]: a `tokio::time::timeout` of
//! min(lease/2, 5 s) around the whole exchange (a hung connection must not hang a caller), with quick
//! retries on the next endpoint inside that bound, so that one dead etcd member among several is invisible
//! to callers. Every write tend retries may be applied twice without harm: plain puts, deletes,
//! compare-and-put transactions whose outcome is re-read (a claim found held by this member on this
//! lease is a win), lease grants (a spare lease expires unused).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::cluster::fence::Timing;
use crate::cluster::{ClusterConfig, ClusterError};

/// The clients, the endpoint in use, and the timings of this cluster's lease.
pub(crate) struct Etcd {
    endpoints: Vec<Endpoint>,
    current: AtomicUsize,
    options: ConnectOptions,
    pub(crate) timing: Timing,
}

/// One etcd member's client URL and its client, made on first use.
struct Endpoint {
    url: String,
    client: OnceCell<Client>,
}

/// How often the HTTP/2 connection is pinged while streams are open. etcd refuses pings more frequent
/// than its `--grpc-keepalive-min-time` (5 s by default) with GOAWAY, so not below that.
const PING_EVERY: Duration = Duration::from_secs(5);

impl Etcd {
    /// Prepares the clients; nothing is sent until the first call (which, with a username, first asks
    /// that endpoint for a token). Fails only on unreadable TLS files.
    pub(crate) fn new(config: &ClusterConfig) -> Result<Etcd, ClusterError> {
        // etcd counts leases in whole seconds: round up, so the lease is never shorter than configured.
        let timing =
            Timing::for_lease(Duration::from_secs(config.lease.as_secs_f64().ceil() as u64));
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timing.rpc)
            .with_keep_alive(PING_EVERY, timing.rpc)
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            options = options
                .with_user(user.clone(), password.expose())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = tls_options(config)? {
            options = options.with_tls(tls);
        }
        let endpoints = config
            .etcd
            .iter()
            .map(|url| Endpoint {
                url: url.clone(),
                client: OnceCell::new(),
            })
            .collect();
        // Replicas start on different members, so their load spreads over the etcd cluster.
        let first = fastrand::usize(..config.etcd.len().max(1));
        Ok(Etcd {
            endpoints,
            current: AtomicUsize::new(first),
            options,
            timing,
        })
    }

    /// The endpoint in use (its index) and its client, connecting it first if needed.
    pub(crate) async fn pick(&self) -> (usize, Result<Client, etcd_client::Error>) {
        let i = self.current();
        (i, self.client_at(i).await)
    }

    fn current(&self) -> usize {
        self.current.load(Ordering::Acquire) % self.endpoints.len().max(1)
    }

    async fn client_at(&self, i: usize) -> Result<Client, etcd_client::Error> {
        let Some(endpoint) = self.endpoints.get(i) else {
            return Err(etcd_client::Error::InvalidArgs("no etcd endpoints".into()));
        };
        endpoint
            .client
            .get_or_try_init(|| {
                Client::connect([endpoint.url.as_str()], Some(self.options.clone()))
            })
            .await
            .cloned()
    }

    /// Endpoint `i` failed: later calls use the next one (unless another caller moved on already).
    pub(crate) fn failed(&self, i: usize) {
        let n = self.endpoints.len().max(1);
        if self
            .current
            .compare_exchange(i, (i + 1) % n, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && n > 1
        {
            tracing::debug!(endpoint = %self.endpoints[(i + 1) % n].url, "Switching etcd endpoint");
        }
    }

    /// Runs `f` against the endpoint in use within the RPC bound; on a transport failure or a hung attempt
    /// moves to the next endpoint and tries again while time is left. `op` and `key` name the call in
    /// errors.
    ///
    /// Each attempt gets a third of the bound: when an etcd member dies, a request it was forwarding can
    /// hang until etcd's own request timeout (seconds) although the rest of the cluster already has a new
    /// raft leader; another attempt elsewhere gets through. Abandoned attempts may still be applied later,
    /// which every call here tolerates (see the module doc).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        mut f: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let bound = self.timing.rpc;
        let end = Instant::now() + bound;
        let per_attempt = (bound / 3).max(Duration::from_millis(250));
        let mut pause = Duration::from_millis(10);
        loop {
            let attempt_end = (Instant::now() + per_attempt).min(end);
            let i = self.current();
            let attempt = async {
                let client = self.client_at(i).await.map_err(|e| (true, e))?;
                f(client).await.map_err(|e| (false, e))
            };
            let retry = match tokio::time::timeout_at(attempt_end, attempt).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err((_, e))) if transient(&e) => Err(e),
                Ok(Err((true, source))) => {
                    return Err(ClusterError::Connect {
                        endpoints: self.endpoints[i].url.clone(),
                        source,
                    });
                }
                Ok(Err((false, source))) => {
                    return Err(ClusterError::Etcd {
                        op,
                        key: key.to_string(),
                        source,
                    });
                }
                Err(_) => Ok(()),
            };
            self.failed(i);
            if Instant::now() + pause >= end {
                return Err(match retry {
                    Err(source) => ClusterError::Etcd {
                        op,
                        key: key.to_string(),
                        source,
                    },
                    Ok(()) => ClusterError::Timeout {
                        op,
                        key: key.to_string(),
                        after: bound,
                    },
                });
            }
            match &retry {
                Err(e) => tracing::debug!(op, key, error = %e, "etcd call failed; trying again"),
                Ok(()) => tracing::debug!(op, key, "etcd call got no answer in time; trying again"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

/// Errors worth another try on another connection: failures of the connection itself (tonic reports a
/// connection that broke under a call as a status that carries the transport error as its source; statuses
/// sent by etcd carry none) and etcd's "unavailable" answers (no leader, an election in progress).
pub(crate) fn transient(e: &etcd_client::Error) -> bool {
    const DEADLINE_EXCEEDED: i32 = 4;
    const UNAVAILABLE: i32 = 14;
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            matches!(i32::from(s.code()), DEADLINE_EXCEEDED | UNAVAILABLE)
                || std::error::Error::source(s).is_some()
        }
        _ => false,
    }
}

/// Whether etcd said the lease does not exist (expired or revoked).
pub(crate) fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("not found"),
        etcd_client::Error::GRpcStatus(s) => s.message().contains("lease not found"),
        _ => false,
    }
}

fn tls_options(config: &ClusterConfig) -> Result<Option<TlsOptions>, ClusterError> {
    if config.ca.is_none() && config.cert.is_none() {
        return Ok(None);
    }
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|source| ClusterError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &config.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}
