//! Leader-only scaling: with `[cluster]`, only the replica that leads decides and acts, and its learned
//! memory lives in etcd so that the next leader goes on from it.
//!
//! The orchestrator asks [`Lead::fence`] before each cycle and before each cloud or balancer call: a fence
//! fails at the lease deadline (monotonic clock, with a margin) even before the election notices, so a leader
//! that was paused past its lease acts no more when it resumes. The memory is written with
//! `Cluster::put_fenced`, which etcd refuses once a newer term exists.

use tokio::sync::watch;

use super::forecast::Snapshot;
use crate::cluster::{Cluster, ClusterError, Fence};

/// This replica's view of the cluster's leadership, for one fleet.
pub struct Lead {
    cluster: Cluster,
    leadership: watch::Receiver<Option<Fence>>,
    prefix: String,
    term: Option<i64>,
}

impl std::fmt::Debug for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lead")
            .field("member", &self.cluster.name())
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl Lead {
    /// The leadership of `cluster`, for the fleet named `prefix`.
    pub fn new(cluster: Cluster, prefix: &str) -> Lead {
        Lead {
            leadership: cluster.leadership(),
            cluster,
            prefix: prefix.to_string(),
            term: None,
        }
    }

    /// The fence while this replica leads and its lease can still be trusted; None otherwise.
    pub fn fence(&self) -> Option<Fence> {
        self.leadership
            .borrow()
            .clone()
            .filter(|f| f.check().is_ok())
    }

    /// True the first time a fence of a new term is seen: the new leader must load the memory.
    pub fn new_term(&mut self, fence: &Fence) -> bool {
        let new = self.term != Some(fence.rev());
        self.term = Some(fence.rev());
        new
    }

    /// This replica's member name.
    pub fn member(&self) -> &str {
        self.cluster.name()
    }

    fn key(&self) -> String {
        format!("scale/memory/{}", self.prefix)
    }

    /// The memory the last leader left in etcd, if any.
    pub async fn load_memory(&self) -> Result<Option<Snapshot>, ClusterError> {
        self.cluster.get_json(&self.key()).await
    }

    /// Writes the memory, only while `fence` still holds (etcd compares the leader key's revision).
    pub async fn save_memory(
        &self,
        fence: &Fence,
        snapshot: &Snapshot,
    ) -> Result<(), ClusterError> {
        self.cluster.put_fenced(fence, &self.key(), snapshot).await
    }
}
