//! `tend run`: assembles the parts the config enables and runs them until a signal.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alert::Alerter;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::service::MonitorService;
use crate::monitor::web::MonitorSection;
use crate::runtime::supervise;
use crate::store::Store;
use crate::web::Web;
use std::sync::Arc;

/// Where the running config came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// The embedded demo.
    Demo,
}

/// The embedded demo config (`src/demo.toml`).
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// The shared handles every part gets.
#[derive(Clone, Debug)]
pub struct Context {
    /// The config.
    pub config: std::sync::Arc<Config>,
    /// The store.
    pub store: Store,
    /// Prometheus registry.
    pub metrics: Metrics,
    /// Alert sink.
    pub alerter: Alerter,
}

/// How long in-flight work gets after a stop signal.
pub const GRACE: Duration = Duration::from_secs(8);

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
pub async fn run(ctx: Context, parts: Parts, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let config = ctx.config.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let fleet_status = crate::scale::FleetStatus::default();
    let scaling = parts.scale && config.scale.is_some() && config.cloud.is_some();
    let mut web = Web::new(config.web.clone(), ctx.metrics.clone());
    if let (true, Some(monitor)) = (parts.monitor, &config.monitor) {
        let service = MonitorService::new(
            monitor.clone(),
            ctx.store.clone(),
            ctx.metrics.clone(),
            ctx.alerter.clone(),
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
    if scaling {
        web = web.section(Arc::new(fleet_status.clone()));
    }
    if config.deploy.is_some() {
        web = web
            .section(Arc::new(crate::deploy::service::DeploySection(
                ctx.store.clone(),
            )))
            .routes(crate::deploy::service::routes(
                ctx.clone(),
                shutdown.clone(),
            ));
    }
    if config.web.enabled {
        let bound = web.bind().await?;
        let addr = bound.local_addr().context("reading the bound address")?;
        crate::notice!(url = %format!("http://{addr}/"), "Status page up");
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = bound.run(token).await {
                tracing::error!(%error, "Web server stopped");
            }
        });
    }
    if scaling {
        let (ctx, token, status) = (ctx.clone(), shutdown.clone(), fleet_status.clone());
        tasks.spawn(crate::runtime::supervise(
            "scale",
            shutdown.clone(),
            move || {
                let (ctx, token, status) = (ctx.clone(), token.clone(), status.clone());
                async move {
                    let orchestrator = crate::scale::run::from_context(&ctx, false, status)
                        .await?
                        .ok_or("no [scale] or [cloud] section")?;
                    orchestrator.run(token).await?;
                    Ok(())
                }
            },
        ));
    }
    shutdown.cancelled().await;
    let drained =
        tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "Some parts did not stop within {}s; leaving them",
            GRACE.as_secs()
        );
        tasks.abort_all();
    }
    Ok(())
}
