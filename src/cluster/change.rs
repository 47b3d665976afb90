//! What a guarded transaction on shared state is made of: the [`Guard`]s it checks, the [`Write`]s it makes (each
//! with its [`Life`]) and the [`Versioned`] values a later guard compares. A leaf of `cluster/`: `txn.rs` (the
//! transactions on the `Cluster` handle) uses it; it uses no sibling but `error.rs`.

use serde::Serialize;

use super::error::ClusterError;

/// A JSON value read back with what a later guard compares: its mod revision and the lease it is bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The key's mod revision (0 never occurs for a present key).
    pub mod_revision: i64,
    /// The lease the key is bound to (0: none).
    pub lease: i64,
}

/// A condition of a `Cluster::commit`, on a key relative to `state/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The key does not exist.
    Absent(String),
    /// The key exists and was last changed at this mod revision.
    Unchanged(String, i64),
}

/// How long a [`Write::Put`] lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Until overwritten or deleted.
    Kept,
    /// Bound to this replica's member lease: it vanishes when this replica does (or is paused past it).
    Member,
    /// Bound to a lease of its own of this many seconds.
    Seconds(i64),
}

/// One change of a `Cluster::commit`, on a key relative to `state/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Put JSON bytes (see [`Write::put`]).
    Put {
        /// The key.
        key: String,
        /// The JSON.
        value: Vec<u8>,
        /// How long it lives.
        life: Life,
    },
    /// Delete the key (nothing if absent).
    Delete(String),
}

impl Write {
    /// A put of `value` as JSON.
    pub fn put<T: Serialize>(key: &str, value: &T, life: Life) -> Result<Write, ClusterError> {
        let value = serde_json::to_vec(value).map_err(|source| ClusterError::Encode {
            key: key.to_string(),
            source,
        })?;
        Ok(Write::Put {
            key: key.to_string(),
            value,
            life,
        })
    }
}
