//! `tend run`: opens the shared handles (store, metrics, alerter), builds each part from its own config section
//! and the handles it needs, and runs them as supervised tasks until the shutdown token is cancelled.
//!
//! No part sees the whole config: the monitor gets `[monitor]`, the orchestrator `[scale]` and `[cloud]`, the
//! deployer `[deploy]` (and `[cloud]` for `hosts = "fleet"`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alert::claims::ClusterClaims;
use crate::alert::{Alert, AlertError, Alerter};
use crate::cloud::CloudError;
use crate::cluster::{Cluster, ClusterConfig, ClusterError, ClusterEvent, Health, MemberInfo};
use crate::config::Config;
use crate::core::{Event, Level};
use crate::deploy::Deployer;
use crate::deploy::etcd_releases::EtcdReleases;
use crate::deploy::lead::DeployLeader;
use crate::metrics::Metrics;
use crate::monitor::service::MonitorService;
use crate::monitor::share::Sharing;
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
    /// The cluster settings cannot work (TLS files, member name).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
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
    let cluster = match &config.cluster {
        Some(c) => {
            let cluster = join(c, config, handles, shutdown.clone()).await?;
            web = web
                .section(Arc::new(crate::cluster::web::ClusterSection(
                    cluster.clone(),
                )))
                .routes(crate::cluster::web::routes(cluster.clone()));
            tasks.spawn(tell_cluster_events(
                cluster.clone(),
                handles.alerter.clone(),
                shutdown.clone(),
            ));
            Some(cluster)
        }
        None => None,
    };
    if let (true, Some(monitor)) = (parts.monitor, &config.monitor) {
        let service = MonitorService::new(
            monitor.clone(),
            handles.store.clone(),
            handles.metrics.clone(),
            handles.alerter.clone(),
        )
        .with_maintenance(config.maintenance.clone());
        let service = match (&cluster, &config.cluster) {
            (Some(cluster), Some(c)) => {
                let sharing = Sharing::start(
                    cluster.clone(),
                    c.zone.clone(),
                    monitor.share_checks,
                    monitor.confirm,
                    shutdown.clone(),
                )
                .map_err(AppError::Cluster)?;
                service.with_sharing(Arc::new(sharing))
            }
            _ => service,
        };
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
        web = web.lane(Arc::new(crate::scale::web::FleetLane(
            handles.store.clone(),
        )));
        web = web.routes(crate::scale::web::routes(status.clone()));
        let (scale, cloud, h) = (scale.clone(), cloud.clone(), handles.clone());
        let (token, cluster) = (shutdown.clone(), cluster.clone());
        tasks.spawn(supervise("scale", shutdown.clone(), move || {
            let (scale, cloud, h) = (scale.clone(), cloud.clone(), h.clone());
            let (token, status, cluster) = (token.clone(), status.clone(), cluster.clone());
            async move {
                // Built inside the task: a provider that cannot be reached yet is retried with backoff.
                let mut orchestrator =
                    Orchestrator::build(&scale, &cloud, &h.store, &h.alerter, &h.metrics, false)
                        .await
                        .map_err(ScaleError::Cloud)?
                        .with_status(status);
                if let Some(cluster) = cluster {
                    orchestrator = orchestrator.with_cluster(cluster);
                }
                orchestrator.run(token).await
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
        // With [cluster], releases and the lock live in etcd; webhooks to any replica queue a request the leader runs.
        let deployer = match &cluster {
            Some(c) => deployer.with_releases(Arc::new(EtcdReleases::new(c.clone()))),
            None => deployer,
        };
        web = web
            .section(Arc::new(crate::deploy::web::DeploySection(
                deployer.releases().clone(),
            )))
            .lane(Arc::new(crate::deploy::web::DeployLane(
                handles.store.clone(),
            )));
        web = match &cluster {
            None => web.routes(crate::deploy::web::routes(deployer, shutdown.clone())),
            Some(cluster) => {
                let (c, d, token) = (cluster.clone(), deployer.clone(), shutdown.clone());
                tasks.spawn(supervise("deploy", shutdown.clone(), move || {
                    DeployLeader::new(c.clone(), d.clone()).run(token.clone())
                }));
                web.routes(crate::deploy::web::cluster_routes(
                    deployer,
                    cluster.clone(),
                    shutdown.clone(),
                ))
            }
        };
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
    let drained = tokio::time::timeout(GRACE, async {
        while tasks.join_next().await.is_some() {}
        // Leadership resigned and the lease revoked, so another replica takes over at once.
        if let Some(cluster) = &cluster {
            cluster.stopped().await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "Some parts did not stop within {}; leaving them",
            crate::core::duration::exact(GRACE)
        );
        tasks.abort_all();
    }
    Ok(())
}

/// Joins the cluster `[cluster]` describes and has the alerter claim every message in it.
async fn join(
    c: &ClusterConfig,
    config: &Config,
    handles: &Handles,
    shutdown: CancellationToken,
) -> Result<Cluster, AppError> {
    let address = c
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.web.listen));
    let me = MemberInfo::for_config(c, address)?;
    let cluster = Cluster::join(c, me, &handles.metrics, shutdown).await?;
    handles
        .alerter
        .coordinate(Arc::new(ClusterClaims::new(cluster.clone(), c.lease)));
    Ok(cluster)
}

/// Tells the team when this replica loses etcd (it then works alone) and when it is back.
async fn tell_cluster_events(cluster: Cluster, alerter: Alerter, shutdown: CancellationToken) {
    let mut events = cluster.events();
    let me = cluster.name().to_string();
    let degraded = |since: std::time::SystemTime| {
        Alert::new(
            Event::ClusterDegraded,
            &me,
            Level::Error,
            format!("{me} cannot reach etcd: working alone"),
            format!(
                "{me} has not reached etcd since {}. Until it does, it checks and alerts on its own (alerts \
                 go out without cluster coordination, so another replica may send them too) and it does no \
                 leader work: no scaling, no deploys.",
                crate::core::time::rfc3339(since)
            ),
        )
    };
    // The event of an outage at start came before anyone listened.
    if let Health::Unreachable { since } = cluster.health() {
        alerter.raise(degraded(since));
    }
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.recv() => e,
        };
        match event {
            Ok(ClusterEvent::Degraded { since }) => alerter.raise(degraded(since)),
            Ok(ClusterEvent::Recovered { after }) => alerter.raise(Alert::new(
                Event::ClusterRecovered,
                &me,
                Level::Notice,
                format!(
                    "{me} reaches etcd again after {}",
                    crate::core::duration::seconds(after)
                ),
                format!("{me} is a member of the cluster again; alerts are coordinated again."),
            )),
            Ok(ClusterEvent::LeadershipGained) => {
                crate::notice!(member = %me, "This replica leads the cluster")
            }
            Ok(ClusterEvent::LeadershipLost) => {
                crate::notice!(member = %me, "This replica no longer leads the cluster")
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
