//! Continuous deployment over SSH: the `[deploy]` config, a pure planner and rollout state machine,
//! the SSH execution (system OpenSSH through the `openssh` crate, so `~/.ssh/config`, the agent and
//! `known_hosts` just work) and the signed CI webhook verifier.
//!
//! Why split this way: everything that *decides* (which hosts go next, whether the rollout failed,
//! whether a webhook is genuine) is pure and tested without I/O; `ssh.rs`, `health.rs` and
//! `rollout.rs` only gather results, ask the planner and act.

pub mod config;
pub mod health;
pub mod plan;
pub mod rollout;
pub mod service;
pub mod ssh;
pub mod webhook;

pub use config::{DeployConfig, WebhookConfig};
pub use plan::{DeployContext, Plan, PlanError, Target, Verdict, build_plan};
pub use rollout::{
    HostFailure, HostReport, HostResult, RolloutOptions, RolloutSink, RolloutSummary, WriterSink,
    deploy, run_rollout,
};
pub use webhook::{Refusal, Trigger, WebhookOutcome, WebhookRequest, verify};
