//! The etcd client as tend uses it: built from `[cluster]`, and one wrapper that bounds every call.
//!
//! Every unary call goes through [`Etcd::call`]: a `tokio::time::timeout` of min(lease/2, 5 s) around the
//! whole exchange (a hung connection must not hang a caller), with quick retries of transport-level
//! failures and hung attempts inside that bound, so that one dead etcd member among several is invisible
//! to callers. Every write tend retries may be applied twice without harm: plain puts, deletes,
//! compare-and-put transactions whose outcome is re-read (a claim found held by this member on this
//! lease is a win), lease grants (a spare lease expires unused).

use std::future::Future;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::time::Instant;

use crate::cluster::fence::Timing;
use crate::cluster::{ClusterConfig, ClusterError};

/// A connected client and the timings of this cluster's lease.
#[derive(Clone)]
pub(crate) struct Etcd {
    client: Client,
    pub(crate) timing: Timing,
}

/// How often the HTTP/2 connection is pinged while streams are open. etcd refuses pings more frequent
/// than its `--grpc-keepalive-min-time` (5 s by default) with GOAWAY, so not below that.
const PING_EVERY: Duration = Duration::from_secs(5);

impl Etcd {
    /// Builds the client. The channel connects lazily (no I/O here) unless a username is set, in which
    /// case etcd is asked for a token now.
    pub(crate) async fn connect(config: &ClusterConfig) -> Result<Etcd, ClusterError> {
        let timing = Timing::for_lease(config.lease);
        let endpoints = config.etcd.join(",");
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
        let connect = Client::connect(&config.etcd, Some(options));
        let client = match tokio::time::timeout(timing.rpc * 2, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(source)) => return Err(ClusterError::Connect { endpoints, source }),
            Err(_) => {
                return Err(ClusterError::Timeout {
                    op: "connect",
                    key: endpoints,
                    after: timing.rpc * 2,
                });
            }
        };
        Ok(Etcd { client, timing })
    }

    /// A handle on the client (cheap: it shares the channel).
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `f` against the client within the RPC bound, retrying transport failures and hung attempts
    /// while time is left. `op` and `key` name the call in errors.
    ///
    /// Each attempt gets a third of the bound: when an etcd member dies, a request it was forwarding can
    /// hang until etcd's own request timeout (seconds) although the rest of the cluster already has a new
    /// raft leader; another attempt on another connection gets through. Abandoned attempts may still be
    /// applied later, which every call here tolerates (see the module doc).
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
        let mut pause = Duration::from_millis(25);
        loop {
            let attempt_end = (Instant::now() + per_attempt).min(end);
            let outcome = tokio::time::timeout_at(attempt_end, f(self.client.clone())).await;
            let retry = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if transient(&e) => Err(e),
                Ok(Err(source)) => {
                    return Err(ClusterError::Etcd {
                        op,
                        key: key.to_string(),
                        source,
                    });
                }
                Err(_) => Ok(()),
            };
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
