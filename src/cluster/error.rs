//! The errors of the cluster layer: each names the etcd operation and key it was about.

use std::path::PathBuf;
use std::time::Duration;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The client could not be set up for these endpoints (bad URL, TLS files, authentication).
    #[error("cannot connect to etcd at {endpoints}")]
    Connect {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read the etcd TLS file {}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The host name (the default member name) could not be read.
    #[error("cannot read the host name for the member name (set cluster.name)")]
    Hostname(#[source] std::io::Error),
    /// The member name cannot be used as a key.
    #[error("invalid member name {0:?}: use 1 to 128 of letters, digits, '-', '_', '.'")]
    InvalidName(String),
    /// etcd answered with an error.
    #[error("etcd {op} of {key} failed")]
    Etcd {
        /// The operation ("get", "txn", "lease grant", ...).
        op: &'static str,
        /// The key (or lease) it was about.
        key: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer in time.
    #[error("etcd {op} of {key} timed out after {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The key (or lease) it was about.
        key: String,
        /// The bound that passed.
        after: Duration,
    },
    /// A stored value is not the JSON the caller expects.
    #[error("value at {key} is not the expected JSON")]
    Json {
        /// The key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be written as JSON.
    #[error("value for {key} cannot be written as JSON")]
    Encode {
        /// The key.
        key: String,
        /// The serialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// A fenced write was refused: this replica no longer leads (its fence failed locally, or etcd's leader
    /// key is gone or belongs to a newer term).
    #[error("write refused: this replica is not the leader any more (fenced)")]
    Fenced,
    /// This replica holds no live lease right now (etcd unreachable or rejoining); claims cannot be made.
    #[error("no live etcd lease: etcd is unreachable or this replica is rejoining")]
    NoLease,
    /// A claim kept changing under this replica (a takeover racing ours); try again later.
    #[error("claim of {key} kept changing while it was being taken")]
    Contended {
        /// The claim key.
        key: String,
    },
    /// A caller's key cannot be used.
    #[error("invalid cluster key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
