//! The deploy's web parts: `POST /hooks/deploy` (the signed CI trigger), `GET /api/deploys/{id}`,
//! `GET /api/releases?limit=N` (newest first), the status page block of the last ten deploys, and its lane of
//! the "last 24 hours" chart. With `[cluster]`, the webhook (on any replica) queues a request for the leader
//! (`requests.rs`) and `GET /api/deploy-requests/{delivery}` follows it.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use super::releases::ReleaseLog;
use super::requests::{self, Submitted};
use super::service::{DeployServiceError, Deployer, LogSink, Origin};
use super::store;
use super::{DeployContext, Trigger, WebhookOutcome, WebhookRequest};
use crate::cluster::Cluster;
use crate::core::time::millis;
use crate::store::Store;
use crate::web::chart::TimeAxis;
use crate::web::page::escape;
use crate::web::{Drawn, Lane, Section};

#[derive(Clone)]
struct HookState {
    deployer: Deployer,
    shutdown: CancellationToken,
    cluster: Option<Cluster>,
}

type Answer = (StatusCode, Json<serde_json::Value>);

fn refuse(status: u16, message: String) -> Answer {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(serde_json::json!({ "error": message })),
    )
}

/// `POST /hooks/deploy` (signed CI trigger) and `GET /api/deploys/{id}`.
pub fn routes(deployer: Deployer, shutdown: CancellationToken) -> Router {
    routes_in(deployer, None, shutdown)
}

/// The same routes with `[cluster]`: the webhook queues a request that the leader runs, and
/// `GET /api/deploy-requests/{delivery}` follows it.
pub fn cluster_routes(deployer: Deployer, cluster: Cluster, shutdown: CancellationToken) -> Router {
    routes_in(deployer, Some(cluster), shutdown)
}

fn routes_in(deployer: Deployer, cluster: Option<Cluster>, shutdown: CancellationToken) -> Router {
    let limit = deployer
        .config()
        .webhook
        .as_ref()
        .map_or(1 << 20, |w| w.max_body_bytes);
    Router::new()
        .route(
            "/hooks/deploy",
            post(hook).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/deploys/{id}", get(one))
        .route("/api/releases", get(list))
        .route("/api/deploy-requests/{delivery}", get(follow))
        .with_state(HookState {
            deployer,
            shutdown,
            cluster,
        })
}

async fn hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Answer {
    let trigger = match verified(&s.deployer, &headers, &body, s.cluster.is_none()).await {
        Ok(Some(t)) => t,
        Ok(None) => return (StatusCode::OK, Json(serde_json::json!({ "ok": "pong" }))),
        Err(answer) => return answer,
    };
    if let Some(cluster) = &s.cluster {
        return queue(&s.deployer, cluster, &trigger).await;
    }
    let store = s.deployer.store().clone();
    match store::record_delivery(&store, trigger.delivery.clone(), millis(SystemTime::now())).await
    {
        Ok(true) => {}
        Ok(false) => return refuse(409, "this delivery was already received".into()),
        Err(e) => return refuse(503, format!("store unavailable: {e}")),
    }
    let id = match start(&s, &trigger).await {
        Ok(started) => started,
        Err((status, e)) => {
            // A deploy that cannot start frees its delivery id, so the CI's redelivery can try again.
            if let Err(error) = store::forget_delivery(&store, trigger.delivery.clone()).await {
                tracing::warn!(%error, "Cannot forget a webhook delivery id");
            }
            return refuse(status, e.to_string());
        }
    };
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "deploy": id, "url": format!("/api/deploys/{id}") })),
    )
}

/// The signed request checked: `Ok(Some(trigger))` to deploy, `Ok(None)` for a ping, `Err` the refusal to send.
async fn verified(
    deployer: &Deployer,
    headers: &HeaderMap,
    body: &Bytes,
    replay_in_store: bool,
) -> Result<Option<Trigger>, Answer> {
    let Some(webhook) = deployer.config().webhook.clone() else {
        return Err(refuse(404, "no [deploy.webhook] configured".into()));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = WebhookRequest {
        signature: header("x-hub-signature-256"),
        delivery: header("x-github-delivery"),
        event: header("x-github-event"),
        body,
    };
    // The replay check reads the one id this request carries (the generic body's id is derived by `verify`,
    // so ask it first with "nothing seen", then look the resulting id up).
    let outcome = match super::verify(&webhook, &request, |_| false) {
        Ok(WebhookOutcome::Deploy(t)) if replay_in_store => {
            match store::delivery_seen(deployer.store(), t.delivery.clone()).await {
                Ok(true) => super::verify(&webhook, &request, |_| true),
                Ok(false) => Ok(WebhookOutcome::Deploy(t)),
                Err(e) => return Err(refuse(503, format!("store unavailable: {e}"))),
            }
        }
        other => other,
    };
    match outcome {
        Err(refusal) => {
            // The refusal's text never contains the secret (see webhook.rs).
            tracing::warn!(status = refusal.status(), reason = %refusal, "Deploy webhook refused");
            Err(refuse(refusal.status(), refusal.to_string()))
        }
        Ok(WebhookOutcome::Ping { .. }) => Ok(None),
        Ok(WebhookOutcome::Deploy(t)) => Ok(Some(t)),
    }
}

/// With `[cluster]`: checks the plan, then claims the delivery and leaves the request for the leader, at once.
async fn queue(deployer: &Deployer, cluster: &Cluster, trigger: &Trigger) -> Answer {
    let context = DeployContext {
        commit: Some(trigger.commit.clone()),
        branch: Some(trigger.branch.clone()),
    };
    if let Err(e) = deployer.plan(context, None).await {
        return refuse(422, e.to_string());
    }
    let at = millis(SystemTime::now());
    match requests::submit(cluster, trigger, at).await {
        Ok(Submitted::Duplicate) => (
            StatusCode::OK,
            Json(serde_json::json!({ "ok": "duplicate", "delivery": trigger.delivery })),
        ),
        Ok(Submitted::Queued) => {
            crate::info!(delivery = %trigger.delivery, commit = %trigger.commit,
                "Deploy webhook queued for the leader");
            let key = requests::key_of(&trigger.delivery);
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "queued": trigger.delivery,
                    "leader": cluster.leader(),
                    "url": format!("/api/deploy-requests/{key}"),
                })),
            )
        }
        Err(e) => refuse(
            503,
            format!(
                "cannot queue the deploy in the cluster: {}",
                crate::core::chain(&e)
            ),
        ),
    }
}

/// `GET /api/deploy-requests/{delivery}`: the request while it waits or runs, then its release.
async fn follow(State(s): State<HookState>, Path(delivery): Path<String>) -> Answer {
    let Some(cluster) = &s.cluster else {
        return refuse(404, "deploy requests exist only with [cluster]".into());
    };
    let key = requests::request_key(&delivery);
    match cluster.get_json::<requests::DeployRequest>(&key).await {
        Ok(Some(r)) => {
            let deploy = r.taken.as_ref().and_then(|t| t.deploy);
            // Taken: the release's own state once it has one (the request goes shortly after it ends).
            let release = match deploy {
                Some(id) => s.deployer.releases().get(id).await.ok().flatten(),
                None => None,
            };
            let state = match (&r.taken, release) {
                (None, _) => "queued".to_owned(),
                (Some(_), Some(release)) => release.state,
                (Some(_), None) => "running".to_owned(),
            };
            return (
                StatusCode::OK,
                Json(serde_json::json!({
                    "state": state,
                    "delivery": r.delivery,
                    "commit": r.commit,
                    "leader": r.taken.map(|t| t.by),
                    "deploy": deploy,
                    "url": deploy.map(|id| format!("/api/deploys/{id}")),
                })),
            );
        }
        Ok(None) => {}
        Err(e) => return refuse(503, crate::core::chain(&e)),
    }
    let by = format!("delivery {delivery}");
    match s.deployer.releases().recent(100).await {
        Ok(list) => match list
            .into_iter()
            .find(|r| r.started_by.as_deref() == Some(&by))
        {
            Some(r) => (
                StatusCode::OK,
                Json(serde_json::json!({
                    "state": r.state,
                    "delivery": delivery,
                    "deploy": r.id,
                    "url": format!("/api/deploys/{}", r.id),
                })),
            ),
            None => refuse(404, format!("no deploy request for delivery {delivery}")),
        },
        Err(e) => refuse(503, e.to_string()),
    }
}

/// Plans and begins the deploy the trigger asks for; its rollout runs in the background.
async fn start(s: &HookState, trigger: &Trigger) -> Result<i64, (u16, DeployServiceError)> {
    let context = DeployContext {
        commit: Some(trigger.commit.clone()),
        branch: Some(trigger.branch.clone()),
    };
    let deployer = &s.deployer;
    let plan = deployer.plan(context, None).await.map_err(|e| (422, e))?;
    let origin = Origin::webhook(&trigger.delivery);
    let id = deployer.begin(&plan, &origin).await.map_err(|e| {
        let status = if matches!(e, DeployServiceError::Locked { .. }) {
            409
        } else {
            503
        };
        (status, e)
    })?;
    crate::notice!(event = %crate::core::Event::DeployStarted, deploy = id, commit = %trigger.commit,
        branch = %trigger.branch, "Deploy triggered by webhook");
    let (deployer, shutdown) = (deployer.clone(), s.shutdown.clone());
    tokio::spawn(async move {
        if let Err(error) = deployer
            .execute(id, plan, Arc::new(LogSink), shutdown)
            .await
        {
            tracing::error!(deploy = id, %error, "Deploy could not run");
        }
    });
    Ok(id)
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<u32>,
}

/// `GET /api/releases?limit=N`: `{ "releases": [...] }`, newest first (default 20, at most 500).
async fn list(State(s): State<HookState>, Query(q): Query<Limit>) -> Answer {
    let limit = q.limit.unwrap_or(20).clamp(1, 500);
    match s.deployer.releases().recent(limit).await {
        Ok(releases) => (
            StatusCode::OK,
            Json(serde_json::json!({ "releases": releases })),
        ),
        Err(e) => refuse(503, e.to_string()),
    }
}

async fn one(State(s): State<HookState>, Path(id): Path<i64>) -> Answer {
    match s.deployer.releases().get(id).await {
        Ok(Some(v)) => (
            StatusCode::OK,
            Json(serde_json::to_value(v).unwrap_or_default()),
        ),
        Ok(None) => refuse(404, format!("no deploy #{id}")),
        Err(e) => refuse(503, e.to_string()),
    }
}

/// The status page block: the last ten deploys, from the release log (the store's, or etcd's with `[cluster]`).
pub struct DeploySection(pub Arc<dyn ReleaseLog>);

impl Section for DeploySection {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let rows = self.0.recent(10).await.unwrap_or_default();
            let mut html = String::from("<section id=\"deploys\"><h2>Deploys</h2>");
            if rows.is_empty() {
                html.push_str("<p class=\"muted\">No deploy yet: run <code>tend deploy</code> or push to the webhook.</p>");
            } else {
                html.push_str("<table><thead><tr><th>#</th><th>Started</th><th>By</th><th>Commit</th><th>Hosts</th><th>Result</th></tr></thead><tbody>");
                for d in rows {
                    let class = match d.state.as_str() {
                        "succeeded" => "up",
                        "failed" | "abandoned" | "interrupted" => "down",
                        _ => "unknown",
                    };
                    let commit: String = d.commit.unwrap_or_default().chars().take(12).collect();
                    let _ = write!(
                        html,
                        "<tr><td><a href=\"/api/deploys/{id}\">{id}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td>\
                         <td>{}</td><td class=\"{class}\">{}</td></tr>",
                        escape(&d.started_at),
                        escape(&d.trigger),
                        escape(&commit),
                        d.hosts.len(),
                        escape(&d.state),
                        id = d.id,
                    );
                }
                html.push_str("</tbody></table>");
            }
            html.push_str("</section>");
            html
        })
    }
}

/// The deploys of the last 24 hours as bars on the status page's shared time axis.
pub struct DeployLane(pub Store);

impl Lane for DeployLane {
    fn draw<'a>(
        &'a self,
        axis: &'a TimeAxis,
    ) -> Pin<Box<dyn Future<Output = Option<Drawn>> + Send + 'a>> {
        Box::pin(async move {
            let spans = match store::since(&self.0, axis.from_ms).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "Cannot read the deploys for the timeline");
                    return None;
                }
            };
            if spans.is_empty() {
                return None;
            }
            let mut svg = String::new();
            for (id, start, end, state, commit) in &spans {
                let (x0, x1) = (axis.x(*start), axis.x(end.unwrap_or(axis.to_ms)));
                let color = match state.as_str() {
                    "succeeded" => "#137333",
                    "failed" | "abandoned" | "interrupted" => "#c5221f",
                    _ => "#1a73e8",
                };
                let commit: String = commit
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect();
                let _ = write!(
                    svg,
                    "<rect class=\"deploy\" x=\"{x0:.1}\" y=\"2\" width=\"{:.1}\" height=\"14\" rx=\"2\" \
                     fill=\"{color}\" data-state=\"{state}\"><title>deploy #{id} {commit}: {state} ({})</title></rect>",
                    (x1 - x0).max(3.0),
                    crate::core::time::rfc3339(crate::core::time::from_millis(*start)),
                    state = escape(state),
                    commit = escape(&commit),
                );
            }
            Some(Drawn {
                name: "deploys".into(),
                height: 18.0,
                svg,
                legend: format!(
                    "Deploys: {} in the last 24 hours, green succeeded, red failed, blue running.",
                    spans.len()
                ),
            })
        })
    }
}
