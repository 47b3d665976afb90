//! Scaling: the pure policy (`policy`), what it learns from the load as it runs (`forecast`), extra signals
//! (`signal`), and the loop that acts on its decisions through a cloud provider and a balancer (`service`).
//!
//! Rooms: `config.rs` the `[scale]` section and policy settings; `policy.rs`, `forecast.rs`, `past.rs`, `names.rs`
//! the pure deciders; `signal.rs` the Prometheus edge and its vote; `service.rs` the orchestrator (`warm.rs`: its warm start from the provider's history); `store.rs` its SQL;
//! `web.rs` its status block; `report.rs` what `tend fleet` and `tend scale --once` print.

mod act;
pub mod config;
pub mod cycle;
pub mod forecast;
pub mod lead;
pub mod names;
pub mod observe;
pub mod past;
pub mod policy;
pub mod report;
pub mod service;
pub mod signal;
pub mod store;
mod warm;
pub mod web;

pub use config::ScaleConfig;
pub use cycle::{CycleReport, Outcome};
pub use service::{Orchestrator, ScaleError};
pub use web::FleetStatus;
