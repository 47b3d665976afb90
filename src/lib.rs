//! tend: do-it-yourself DevOps infrastructure for a small team that runs its own fleet.
//!
//! One library and one binary that
//! - **tell the team at once**: a six-level logger whose errors become alerts ([`log`]), delivered through a
//!   durable outbox by SMTP, webhooks or files without ever blocking the program ([`alert`]);
//! - **watch websites**, **scale a fleet** on its predicted load, and **deploy** over SSH (the parts arrive
//!   module by module; see the README).
//!
//! Every decision (grouping alerts, a monitor's up/down state, a scaling step) is a pure function of what was
//! observed and the time; every I/O edge (SMTP, HTTP, SQLite, cloud APIs, SSH) sits behind a narrow type.
//!
//! # Example: mail every error of a program
//! ```no_run
//! use tend::alert::{AlertConfig, Alerter};
//! use tend::log::{AlertLayer, LogConfig};
//! use tracing_subscriber::prelude::*;
//!
//! let config: AlertConfig = toml::from_str(r#"
//!     [[notifier]]
//!     kind = "file"
//!     path = "outbox"
//! "#).unwrap();
//! let store = tend::store::Store::open("tend.db".as_ref()).unwrap();
//! let alerter = Alerter::start(&config, store, &tend::metrics::Metrics::new()).unwrap();
//! tracing_subscriber::registry().with(AlertLayer::new(alerter.clone(), &LogConfig::default())).init();
//! tend::log::error!(disk = "/var", "Disk almost full");   // an alert, with the lines logged before it
//! alerter.flush(std::time::Duration::from_secs(5));
//! ```
#![deny(missing_docs)]

pub mod alert;
pub mod app;
pub mod balancer;
pub mod cloud;
pub mod cluster;
pub mod config;
pub mod core;
pub mod deploy;
pub mod log;
pub mod metrics;
pub mod monitor;
pub mod runtime;
pub mod scale;
pub mod sim;
pub mod store;
pub mod web;
