//! Scaling: the pure policy (`policy`), what it learns from the load as it runs (`forecast`), and the loop that
//! acts on its decisions through a cloud provider and a balancer (`run`).

pub mod cli;
pub mod config;
pub mod forecast;
pub mod policy;
pub mod report;
pub mod run;
pub mod signal;

pub use config::ScaleConfig;
pub use run::{CycleReport, FleetStatus, Orchestrator, Outcome, ScaleError};
