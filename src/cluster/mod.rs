//! Running several tend replicas as one: membership, leadership with fencing, claims and shared state on etcd.
//!
//! [`Cluster::join`] connects to etcd, grants a lease, registers this replica under it and starts four
//! background tasks that stop on the shutdown token: the keep-alive loop (`lease.rs`: it also starts over
//! with a new lease when the old one is lost), the campaign (`election.rs`), the leader observation, and the
//! member watch (`members.rs`). What they learn is published on `watch` channels, so readers never wait on
//! etcd: [`Cluster::members`], [`Cluster::leader`], [`Cluster::leadership`], [`Cluster::health`].
//!
//! Leadership is only as good as its [`Fence`]: check it right before acting, and write leader-only state
//! with [`Cluster::put_fenced`], which etcd refuses once a newer term exists. Alerts are claimed
//! ([`Cluster::claim`]) so that every alert is delivered once across replicas.

mod change;
mod claim;
mod config;
mod election;
mod error;
mod etcd;
mod fence;
mod handle;
mod health;
mod inner;
mod inspect;
mod keys;
mod lease;
mod member;
mod members;
pub mod rendezvous;
mod shared;
mod state;
mod status;
mod txn;
pub mod web;

pub use change::{Guard, Life, Versioned, Write};
pub use claim::Claim;
pub use config::{ClusterConfig, MIN_LEASE};
pub use error::ClusterError;
pub use fence::{Fence, NotLeader};
pub use handle::Cluster;
pub use health::{ClusterEvent, Health};
pub use inspect::inspect;
pub use member::{Member, MemberInfo};
pub use shared::StateMap;
pub use status::{ClusterStatus, MemberStatus};
