//! The website monitor: checks (HTTP, TCP, TLS), the pure up/down tracker, storm control and the scheduler
//! that runs ten thousand targets on two cores.
//!
//! Data flow: [`config::MonitorConfig`] → [`check::Probe`] per target → [`scheduler::Scheduler`] runs
//! [`check::Checker::check`] on each probe's interval → [`check::Outcome`] → [`tracker::TrackerState`] →
//! [`tracker::Event`] → [`storm::decide`] → [`scheduler::Message`] for the daemon (persist, alert, serve).

pub mod alerts;
pub mod check;
pub mod config;
mod fresh;
pub mod hold;
pub mod lag;
pub mod maintenance;
mod phase;
mod pooled;
pub mod probe;
pub mod quiet;
pub mod report;
pub mod scheduler;
pub mod series;
pub mod service;
pub mod share;
mod spread;
pub mod store;
pub mod storm;
pub mod target;
pub mod tls;
pub mod tracker;
mod transport;
pub mod view;
pub mod web;

pub use check::{Checker, Outcome, Phase, Phases, Probe};
pub use config::{MonitorConfig, TargetConfig};
pub use scheduler::{Message, Report, Scheduler};
pub use tracker::{Event, State, Thresholds, TrackerState};
