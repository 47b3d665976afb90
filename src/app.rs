//! `tend run`: opens the shared handles (store, metrics, alerter), builds each part from its own config section
//! and the handles it needs, and runs them as supervised tasks until the shutdown token is cancelled.
//!
//! No part sees the whole config: the monitor gets `[monitor]`, the orchestrator `[scale]` and `[cloud]`, the
//! deployer `[deploy]` (and `[cloud]` for `hosts = "fleet"`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alert::{AlertError, Alerter};
use crate::cloud::CloudError;
use crate::config::Config;
use crate::deploy::Deployer;
use crate::metrics::Metrics;
use crate::monitor::service::MonitorService;
use crate::monitor::web::MonitorSection;
use crate::runtime::supervise;
use crate::scale::{FleetStatus, Orchestrator, ScaleError};
use crate::store::{Store, StoreError};
use crate::web::{Web, WebError};
use std::sync::Arc;

/// The embedded demo config (`src/demo.toml`).
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// How long in-flight work gets after a stop signal.
pub const GRACE: Duration = Duration::from_secs(8);

/// Why tend could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The alerter could not start (a notifier's settings).
    #[error(transparent)]
    Alert(#[from] AlertError),
    /// The web server could not start.
    #[error(transparent)]
    Web(#[from] WebError),
    /// A cloud or balancer client could not be built.
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// What every part may be handed: the store, the metrics registry and the alerter. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Handles {
    /// The SQLite store.
    pub store: Store,
    /// The Prometheus registry.
    pub metrics: Metrics,
    /// The alert sink.
    pub alerter: Alerter,
}

impl Handles {
    /// Opens the store `[store]` names and starts the alerter `[alert]` describes.
    pub fn open(config: &Config) -> Result<Handles, AppError> {
        let store = Store::open(&config.store.path)?;
        let metrics = Metrics::new();
        let alerter = Alerter::start(&config.alert, store.clone(), &metrics)?;
        Ok(Handles {
            store,
            metrics,
            alerter,
        })
    }
}

/// Which parts a command runs (each also needs its config section).
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    /// The website monitor.
    pub monitor: bool,
    /// The orchestrator.
    pub scale: bool,
}

impl Parts {
    /// Everything the config enables (`tend run`).
    pub const ALL: Parts = Parts {
        monitor: true,
        scale: true,
    };
}

/// Runs the enabled parts until `shutdown`, then stops them within [`GRACE`].
pub async fn run(
    config: &Config,
    handles: &Handles,
    parts: Parts,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut web = Web::new(config.web.clone(), handles.metrics.clone());
    if let (true, Some(monitor)) = (parts.monitor, &config.monitor) {
        let service = MonitorService::new(
            monitor.clone(),
            handles.store.clone(),
            handles.metrics.clone(),
            handles.alerter.clone(),
        );
        web = web
            .section(Arc::new(MonitorSection(service.view())))
            .routes(crate::monitor::web::routes(service.view()));
        crate::info!(targets = monitor.target.len(), "Monitor starting");
        let token = shutdown.clone();
        tasks.spawn(supervise("monitor", token.clone(), move || {
            service.clone().run(token.clone())
        }));
    }
    if let (true, Some(scale), Some(cloud)) = (parts.scale, &config.scale, &config.cloud) {
        let status = FleetStatus::default();
        web = web.section(Arc::new(status.clone()));
        web = web.routes(crate::scale::web::routes(status.clone()));
        let (scale, cloud, h) = (scale.clone(), cloud.clone(), handles.clone());
        let token = shutdown.clone();
        tasks.spawn(supervise("scale", shutdown.clone(), move || {
            let (scale, cloud, h) = (scale.clone(), cloud.clone(), h.clone());
            let (token, status) = (token.clone(), status.clone());
            async move {
                // Built inside the task: a provider that cannot be reached yet is retried with backoff.
                Orchestrator::build(&scale, &cloud, &h.store, &h.alerter, &h.metrics, false)
                    .await
                    .map_err(ScaleError::Cloud)?
                    .with_status(status)
                    .run(token)
                    .await
            }
        }));
    }
    if let Some(deploy) = &config.deploy {
        let deployer = Deployer::new(
            deploy.clone(),
            config.cloud.clone(),
            handles.store.clone(),
            handles.alerter.clone(),
        )
        .with_scale_balancer(config.scale.as_ref().and_then(|s| s.balancer.clone()));
        web = web
            .section(Arc::new(crate::deploy::web::DeploySection(
                handles.store.clone(),
            )))
            .routes(crate::deploy::web::routes(deployer, shutdown.clone()));
    }
    if config.web.enabled {
        let bound = web.bind().await?;
        let addr = bound.local_addr().map_err(WebError::Serve)?;
        crate::notice!(url = %format!("http://{addr}/"), "Status page up");
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = bound.run(token).await {
                tracing::error!(%error, "Web server stopped");
            }
        });
    }
    shutdown.cancelled().await;
    let drained =
        tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "Some parts did not stop within {}; leaving them",
            crate::core::duration::exact(GRACE)
        );
        tasks.abort_all();
    }
    Ok(())
}
