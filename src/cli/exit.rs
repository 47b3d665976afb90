//! The one place errors become exit codes: 2 for bad usage or config, 1 for an unhealthy target or a failed
//! step, 3 for anything unexpected; and how an error is printed (`error: outer: cause`).

use tend::app::AppError;
use tend::config::ConfigErrors;
use tend::deploy::DeployServiceError;
use tend::sim::SimError;
use tend::store::StoreError;
use tend::web::WebError;

/// How a command ended when it ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything is fine (0).
    Ok,
    /// What was checked is unhealthy, or a step failed (1).
    Unhealthy,
}

impl Status {
    /// 1 when `failed`, else 0.
    pub fn failed_if(failed: bool) -> Status {
        if failed {
            Status::Unhealthy
        } else {
            Status::Ok
        }
    }

    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unhealthy => 1,
        }
    }
}

/// The command cannot run as asked (a section missing, a bad flag): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit code for an error: the first cause of a known kind decides.
pub fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<ConfigErrors>() || cause.is::<Usage>() || cause.is::<StoreError>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<AppError>() {
            return match e {
                AppError::Store(_) | AppError::Alert(_) | AppError::Cluster(_) => 2,
                AppError::Web(WebError::Bind { .. }) => 2,
                _ => 3,
            };
        }
        if let Some(e) = cause.downcast_ref::<DeployServiceError>() {
            return match e {
                DeployServiceError::NoCloud
                | DeployServiceError::Plan(_)
                | DeployServiceError::NoRollback(_)
                | DeployServiceError::NoScaleBalancer => 2,
                DeployServiceError::Locked { .. }
                | DeployServiceError::Fleet(_)
                | DeployServiceError::Balancer(_) => 1,
                _ => 3,
            };
        }
        if let Some(e) = cause.downcast_ref::<SimError>() {
            return if matches!(e, SimError::Output { .. }) {
                3
            } else {
                2
            };
        }
        if cause.is::<tend::cluster::ClusterError>() {
            return 2;
        }
        if cause.is::<tend::scale::ScaleError>() || cause.is::<tend::cloud::CloudError>() {
            return 1;
        }
    }
    3
}

/// Prints the error: config errors as they are (one `FILE:LINE:COL: message` per line), others as
/// `error: outer: cause` with each cause once.
pub fn print(error: &anyhow::Error) {
    if let Some(e) = error.downcast_ref::<ConfigErrors>() {
        eprintln!("{e}");
        return;
    }
    eprintln!("error: {}", tend::core::chain(&**error));
}
