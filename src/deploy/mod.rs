//! Continuous deployment over SSH: the `[deploy]` config, a pure planner and rollout state machine,
//! the SSH execution (system OpenSSH through the `openssh` crate, so `~/.ssh/config`, the agent and
//! `known_hosts` just work) and the signed CI webhook verifier.
//!
//! Why split this way: everything that *decides* (which hosts go next, whether the rollout failed,
//! whether a webhook is genuine) is pure and tested without I/O; `ssh.rs`, `health.rs` and
//! `rollout.rs` only gather results, ask the planner and act.
//!
//! Rooms: `config.rs` and `target.rs` the section; `plan.rs`, `state.rs`, `webhook.rs` the pure deciders;
//! `ssh.rs` and `health.rs` the edges (their fakes sit in `rollout_tests.rs`; the balancer is `balancer/`'s);
//! `rollout.rs` the execution (`pool.rs` opens every host's connection at the start, `host.rs` is one host's
//! drain, steps, health check and rejoin);
//! `service.rs` the [`Deployer`] (lock, record, alert); `releases.rs` the release log behind a small
//! interface and the pure choice of the rollback target; `store.rs` its SQL; `web.rs` the webhook route, API and
//! status block; `report.rs` the summary and the lines `tend deploy` prints.
//!
//! With `[cluster]`: `etcd_releases.rs` keeps releases and the lock in etcd, `requests.rs` the webhook's requests
//! to the leader (and the pure choice of what the leader does with them), `lead.rs` the leader's loop that runs
//! them, and `gate.rs` the leadership check before every host step.

pub mod config;
pub mod etcd_releases;
pub mod gate;
pub mod health;
mod host;
pub mod lead;
pub mod plan;
pub mod pool;
mod release;
pub mod releases;
pub mod report;
pub mod requests;
pub mod rollout;
mod script;
pub mod service;
pub mod sink;
pub mod ssh;
pub mod state;
pub mod store;
pub mod target;
pub mod web;
pub mod webhook;

pub use config::{DeployConfig, WebhookConfig};
pub use host::RolloutOptions;
pub use plan::{DeployContext, Plan, PlanError, build_plan};
pub use releases::{Release, ReleaseLog, StoreReleases};
pub use report::{HostFailure, HostReport, HostResult, Progress, RolloutSink, RolloutSummary};
pub use rollout::{Edges, deploy, deploy_gated, run_rollout};
pub use service::{DeployServiceError, Deployer, Origin};
pub use sink::{JsonSink, WriterSink};
pub use state::Verdict;
pub use target::Target;
pub use webhook::{Refusal, Trigger, WebhookOutcome, WebhookRequest, verify};
