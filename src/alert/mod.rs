//! Alerting: [`Alerter::send`] never blocks and never loses an alert.
//!
//! `send` stamps the alert and hands it to a background thread over a lock-free queue (a few hundred
//! nanoseconds; no I/O on the caller's thread). That thread runs its own small tokio runtime, so alerting works
//! in any program and keeps working while the host's runtime is busy or shutting down. It
//! 1. writes each alert into the SQLite outbox first ([`store::record`]: one row per key per dedup window),
//! 2. plans messages with the pure [`plan::plan`] (group wait, "and N more like this", storm digests),
//! 3. delivers every message to every notifier, retrying failures with capped exponential backoff, and records
//!    each delivery, so pending alerts survive a restart and go out after it.
//!
//! The one window where an alert lives only in memory is between `send` returning and the outbox write (at most
//! a few milliseconds: the thread polls every 5 ms while alerts flow, and the first alert after a quiet second wakes
//! it at once); `fatal!` and a graceful shutdown flush it. See [`store`] for the one duplicate that SMTP
//! semantics can force.
//!
//! Rooms: `config.rs` the section, `message.rs` what flows through (the [`Alert`], the [`Later`] alert and the
//! planned [`Message`]), `plan.rs` the pure grouping, `notifier.rs` the delivery edge (with `smtp.rs`,
//! `webhook.rs`, `file.rs`; `error.rs` how they fail), `alerter.rs` the handle callers hold, `service.rs` the alert thread's loop (`deliver.rs` its second half, `outcome.rs` what a delivery task
//! reports back),
//! `store.rs` the outbox's SQL.

mod alerter;
mod batch;
pub mod claims;
pub mod config;
mod deliver;
mod error;
pub mod file;
mod message;
pub mod notifier;
mod outcome;
pub mod plan;
mod service;
pub mod smtp;
pub mod store;
pub mod webhook;

pub use alerter::{AlertError, Alerter};
pub use config::{AlertConfig, NotifierConfig};
pub use error::{DeliveryError, NotifierError};
pub use message::{Alert, Later, Message};
pub use notifier::Notifier;
pub use service::{DeliveryReport, FlushReport, NotifyReport, on_alert_thread};
