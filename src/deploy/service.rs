//! Deploys as the daemon and the CLI run them: hosts from the config or the fleet, the deploy lock and the
//! record in the store, the `DeployFailed` alert, the signed webhook route and the status page block.
//!
//! The lock is one row in `deploy_lock`: a second deploy is refused and told who holds it. A lock whose
//! holder process is gone (a crash) is taken over, so a crash never blocks deploys for good.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use rusqlite::{OptionalExtension, params};
use tokio_util::sync::CancellationToken;

use super::config::Hosts;
use super::rollout::{Progress, RolloutSink};
use super::{
    DeployConfig, DeployContext, Plan, RolloutSummary, Target, WebhookOutcome, WebhookRequest,
};
use crate::app::Context;
use crate::core::Level;
use crate::core::time::millis;
use crate::store::Store;
use crate::web::Section;
use crate::web::page::escape;

/// Why a deploy did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DeployServiceError {
    /// No `[deploy]` section.
    #[error("the config has no [deploy] section")]
    NotConfigured,
    /// `hosts = "fleet"` needs `[cloud]`.
    #[error("deploy.hosts = \"fleet\" needs a [cloud] section")]
    NoCloud,
    /// Listing the fleet failed.
    #[error("cannot list the fleet: {0}")]
    Fleet(String),
    /// The plan could not be made.
    #[error(transparent)]
    Plan(#[from] super::PlanError),
    /// Another deploy holds the lock.
    #[error("another deploy is running: #{id} by {holder} since {since}")]
    Locked {
        /// Its deploy id.
        id: i64,
        /// Who started it (`user@host pid N`).
        holder: String,
        /// When.
        since: String,
    },
    /// The executors could not be built.
    #[error(transparent)]
    Executor(#[from] super::rollout::DeployError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl DeployServiceError {
    /// The CLI's exit code: 2 for config problems, 1 for a refused or failed deploy, 3 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeployServiceError::NotConfigured
            | DeployServiceError::NoCloud
            | DeployServiceError::Plan(_) => 2,
            DeployServiceError::Locked { .. } | DeployServiceError::Fleet(_) => 1,
            _ => 3,
        }
    }
}

/// The hosts to deploy to: the configured list, or the fleet's running instances by private address.
pub async fn targets(
    ctx: &Context,
    config: &DeployConfig,
) -> Result<Vec<Target>, DeployServiceError> {
    match &config.hosts {
        Hosts::List(list) => Ok(list.clone()),
        Hosts::Fleet => {
            let cloud = ctx
                .config
                .cloud
                .as_ref()
                .ok_or(DeployServiceError::NoCloud)?;
            let provider = crate::cloud::build(cloud, &ctx.store)
                .await
                .map_err(|e| DeployServiceError::Fleet(e.to_string()))?;
            let instances = provider
                .list(&cloud.prefix)
                .await
                .map_err(|e| DeployServiceError::Fleet(e.to_string()))?;
            Ok(instances
                .into_iter()
                .filter(|i| i.state == crate::cloud::State::Running)
                .filter_map(|i| {
                    let addr = i.private_address.clone().or(i.public_address.clone())?;
                    Some(Target::fleet(i.name, addr))
                })
                .collect())
        }
    }
}

/// Builds the plan for `context` (and `--only`).
pub async fn plan(
    ctx: &Context,
    context: DeployContext,
    only: Option<&str>,
) -> Result<Plan, DeployServiceError> {
    let config = ctx
        .config
        .deploy
        .as_ref()
        .ok_or(DeployServiceError::NotConfigured)?;
    let hosts = targets(ctx, config).await?;
    Ok(super::build_plan(config, &hosts, &context, only)?)
}

/// Records a new deploy and takes the lock; the id to report.
pub async fn begin(store: &Store, plan: &Plan, trigger: &str) -> Result<i64, DeployServiceError> {
    let holder = holder();
    let commit = plan.context.commit.clone();
    let branch = plan.context.branch.clone();
    let hosts: Vec<String> = plan.hosts.iter().map(|h| h.target.host()).collect();
    let trigger = trigger.to_string();
    let now = millis(SystemTime::now());
    let outcome = store
        .call(move |c| {
            let tx = c.transaction()?;
            let held: Option<(i64, String, i64)> = tx
                .query_row(
                    "SELECT deploy_id, holder, since FROM deploy_lock WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((id, who, since)) = held {
                if holder_alive(&who) {
                    return Ok(Err((id, who, since)));
                }
                tx.execute(
                    "UPDATE deploys SET state = 'abandoned' WHERE id = ?1 AND state = 'running'",
                    [id],
                )?;
                tx.execute("DELETE FROM deploy_lock", [])?;
            }
            tx.execute(
                "INSERT INTO deploys (started_at, trigger, commit_sha, branch, hosts, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![now, trigger, commit, branch, hosts.join(" ")],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO deploy_lock (id, deploy_id, holder, since) VALUES (1, ?1, ?2, ?3)",
                params![id, holder, now],
            )?;
            tx.commit()?;
            Ok(Ok(id))
        })
        .await?;
    outcome.map_err(|(id, holder, since)| DeployServiceError::Locked {
        id,
        holder,
        since: crate::core::time::rfc3339(crate::core::time::from_millis(since)),
    })
}

/// Records the end of a deploy, releases the lock, and alerts on failure.
pub async fn finish(
    ctx: &Context,
    id: i64,
    summary: &RolloutSummary,
    log: String,
) -> Result<(), DeployServiceError> {
    let ok = summary.exit_code() == 0;
    let table = summary.table();
    let now = millis(SystemTime::now());
    ctx.store
        .call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE deploys SET finished_at = ?2, state = ?3, summary = ?4, log = ?5 WHERE id = ?1",
                params![id, now, if ok { "succeeded" } else { "failed" }, table, log],
            )?;
            tx.execute("DELETE FROM deploy_lock WHERE deploy_id = ?1", [id])?;
            tx.commit()
        })
        .await?;
    if let Some((host, failure)) = summary.first_failure() {
        let mut body = format!(
            "Deploy #{id} failed on {} at {}: {}.\n",
            host.host, failure.stage, failure.reason
        );
        if let Some(code) = failure.exit_code {
            let _ = writeln!(body, "Exit code: {code}");
        }
        if !failure.last_lines.is_empty() {
            let _ = writeln!(body, "\nLast lines of output:");
            for l in &failure.last_lines {
                let _ = writeln!(body, "  {l}");
            }
        }
        let _ = write!(body, "\n{}", summary.table());
        tracing::warn!(alert = false, deploy = id, host = %host.host, reason = %failure.reason, "Deploy failed");
        ctx.alerter.send(crate::alert::Alert::event(
            "DeployFailed",
            &format!("#{id}"),
            Level::Error,
            format!("Deploy #{id} failed on {}: {}", host.host, failure.reason),
            body,
        ));
    } else {
        crate::notice!(deploy = id, hosts = summary.hosts.len(), "Deploy succeeded");
    }
    Ok(())
}

/// Plans, locks, runs and records one deploy; output goes to `sink` and is kept for the record.
pub async fn run(
    ctx: &Context,
    plan: Plan,
    trigger: &str,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> Result<(i64, RolloutSummary), DeployServiceError> {
    let config = ctx
        .config
        .deploy
        .clone()
        .ok_or(DeployServiceError::NotConfigured)?;
    let id = begin(&ctx.store, &plan, trigger).await?;
    execute(ctx, &config, id, plan, sink, shutdown).await
}

async fn execute(
    ctx: &Context,
    config: &DeployConfig,
    id: i64,
    plan: Plan,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> Result<(i64, RolloutSummary), DeployServiceError> {
    let keeper = Arc::new(Keeper {
        inner: sink,
        lines: Mutex::new(VecDeque::new()),
    });
    let summary = match super::deploy(config, &plan, keeper.clone(), shutdown).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ctx
                .store
                .call(move |c| {
                    c.execute("UPDATE deploys SET state = 'failed' WHERE id = ?1", [id])?;
                    c.execute("DELETE FROM deploy_lock WHERE deploy_id = ?1", [id])
                })
                .await;
            return Err(e.into());
        }
    };
    let log = keeper
        .lines
        .lock()
        .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    finish(ctx, id, &summary, log).await?;
    Ok((id, summary))
}

/// Keeps the last lines of output for the record, passing everything on.
struct Keeper {
    inner: Arc<dyn RolloutSink>,
    lines: Mutex<VecDeque<String>>,
}

impl RolloutSink for Keeper {
    fn output(&self, host: &str, line: &str) {
        if let Ok(mut l) = self.lines.lock() {
            if l.len() >= 500 {
                l.pop_front();
            }
            l.push_back(format!("{host} | {line}"));
        }
        self.inner.output(host, line);
    }

    fn progress(&self, event: &Progress<'_>) {
        self.inner.progress(event);
    }
}

/// A sink for deploys the daemon runs: output lines at debug, progress at info.
pub struct LogSink;

impl RolloutSink for LogSink {
    fn output(&self, host: &str, line: &str) {
        tracing::debug!(host, "{line}");
    }

    fn progress(&self, event: &Progress<'_>) {
        if let Progress::HostFinished { report } = event {
            crate::info!(host = %report.host, result = %report.result, "Deploy host finished");
        }
    }
}

fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{} pid {}", host.trim(), std::process::id())
}

/// The lock's holder still runs (same host, pid alive); a holder on another host is assumed alive.
fn holder_alive(holder: &str) -> bool {
    let Some((who, pid)) = holder.rsplit_once(" pid ") else {
        return true;
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if !who.ends_with(&format!("@{}", host.trim())) {
        return true;
    }
    pid.parse::<u32>()
        .map(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap_or(true)
}

#[derive(Clone)]
struct HookState {
    ctx: Context,
    shutdown: CancellationToken,
}

/// `POST /hooks/deploy` (signed CI trigger) and `GET /api/deploys/{id}`.
pub fn routes(ctx: Context, shutdown: CancellationToken) -> Router {
    let limit = ctx
        .config
        .deploy
        .as_ref()
        .and_then(|d| d.webhook.as_ref())
        .map_or(1 << 20, |w| w.max_body_bytes);
    Router::new()
        .route(
            "/hooks/deploy",
            post(hook).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/deploys/{id}", get(one))
        .with_state(HookState { ctx, shutdown })
}

async fn hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let refuse = |status: u16, message: String| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(serde_json::json!({ "error": message })),
        )
    };
    let Some(webhook) = s.ctx.config.deploy.as_ref().and_then(|d| d.webhook.clone()) else {
        return refuse(404, "no [deploy.webhook] configured".into());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = WebhookRequest {
        signature: header("x-hub-signature-256"),
        delivery: header("x-github-delivery"),
        event: header("x-github-event"),
        body: &body,
    };
    // The replay check reads the one id this request carries (the generic body's id is derived by `verify`,
    // so ask it first with "nothing seen", then look the resulting id up).
    let outcome = match super::verify(&webhook, &request, |_| false) {
        Ok(WebhookOutcome::Deploy(t)) => {
            let id = t.delivery.clone();
            let seen = s
                .ctx
                .store
                .call(move |c| {
                    c.query_row(
                        "SELECT 1 FROM webhook_deliveries WHERE delivery = ?1",
                        [id],
                        |_| Ok(()),
                    )
                    .optional()
                    .map(|r| r.is_some())
                })
                .await;
            match seen {
                Ok(true) => super::verify(&webhook, &request, |_| true),
                Ok(false) => Ok(WebhookOutcome::Deploy(t)),
                Err(e) => return refuse(503, format!("store unavailable: {e}")),
            }
        }
        other => other,
    };
    let trigger = match outcome {
        Err(refusal) => {
            // The refusal's text never contains the secret (see webhook.rs).
            tracing::warn!(status = refusal.status(), reason = %refusal, "Deploy webhook refused");
            return refuse(refusal.status(), refusal.to_string());
        }
        Ok(WebhookOutcome::Ping { .. }) => {
            return (StatusCode::OK, Json(serde_json::json!({ "ok": "pong" })));
        }
        Ok(WebhookOutcome::Deploy(t)) => t,
    };
    let delivery = trigger.delivery.clone();
    let recorded = s
        .ctx
        .store
        .call(move |c| {
            let now = millis(SystemTime::now());
            // Ids older than 30 days cannot be replayed usefully (the signature's commit is long deployed).
            c.execute(
                "DELETE FROM webhook_deliveries WHERE at < ?1",
                [now - 30 * 86_400_000],
            )?;
            c.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (delivery, at) VALUES (?1, ?2)",
                params![delivery, now],
            )
        })
        .await;
    match recorded {
        Ok(1) => {}
        Ok(_) => return refuse(409, "this delivery was already received".into()),
        Err(e) => return refuse(503, format!("store unavailable: {e}")),
    }
    let context = DeployContext {
        commit: Some(trigger.commit.clone()),
        branch: Some(trigger.branch.clone()),
    };
    // A deploy that cannot start frees its delivery id, so the CI's redelivery can try again.
    let forget = |store: Store, delivery: String| async move {
        let _ = store
            .call(move |c| {
                c.execute(
                    "DELETE FROM webhook_deliveries WHERE delivery = ?1",
                    [delivery],
                )
            })
            .await;
    };
    let plan = match plan(&s.ctx, context, None).await {
        Ok(p) => p,
        Err(e) => {
            forget(s.ctx.store.clone(), trigger.delivery.clone()).await;
            return refuse(422, e.to_string());
        }
    };
    let id = match begin(&s.ctx.store, &plan, "webhook").await {
        Ok(id) => id,
        Err(e) => {
            forget(s.ctx.store.clone(), trigger.delivery.clone()).await;
            let status = if matches!(e, DeployServiceError::Locked { .. }) {
                409
            } else {
                503
            };
            return refuse(status, e.to_string());
        }
    };
    crate::notice!(deploy = id, commit = %trigger.commit, branch = %trigger.branch, "Deploy triggered by webhook");
    let (ctx, shutdown) = (s.ctx.clone(), s.shutdown.clone());
    tokio::spawn(async move {
        let Some(config) = ctx.config.deploy.clone() else {
            return;
        };
        if let Err(error) = execute(&ctx, &config, id, plan, Arc::new(LogSink), shutdown).await {
            tracing::error!(deploy = id, %error, "Deploy could not run");
        }
    });
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "deploy": id, "url": format!("/api/deploys/{id}") })),
    )
}

async fn one(State(s): State<HookState>, Path(id): Path<i64>) -> impl IntoResponse {
    let row = s
        .ctx
        .store
        .call(move |c| {
            c.query_row(
                "SELECT id, started_at, finished_at, trigger, commit_sha, branch, hosts, state, summary
                 FROM deploys WHERE id = ?1",
                [id],
                |r| {
                    Ok(serde_json::json!({
                        "id": r.get::<_, i64>(0)?,
                        "started_at": crate::core::time::rfc3339(crate::core::time::from_millis(r.get(1)?)),
                        "finished_at": r.get::<_, Option<i64>>(2)?
                            .map(|t| crate::core::time::rfc3339(crate::core::time::from_millis(t))),
                        "trigger": r.get::<_, String>(3)?,
                        "commit": r.get::<_, Option<String>>(4)?,
                        "branch": r.get::<_, Option<String>>(5)?,
                        "hosts": r.get::<_, String>(6)?.split(' ').filter(|h| !h.is_empty()).collect::<Vec<_>>(),
                        "state": r.get::<_, String>(7)?,
                        "summary": r.get::<_, Option<String>>(8)?,
                    }))
                },
            )
            .optional()
        })
        .await;
    match row {
        Ok(Some(v)) => (StatusCode::OK, Json(v)),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no deploy #{id}") })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": e.to_string() })),
        ),
    }
}

/// The status page block: the last ten deploys.
pub struct DeploySection(pub Store);

impl Section for DeploySection {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let rows = self
                .0
                .call(|c| {
                    let mut stmt = c.prepare(
                        "SELECT id, started_at, trigger, commit_sha, hosts, state FROM deploys ORDER BY id DESC LIMIT 10",
                    )?;
                    let rows = stmt.query_map([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                        ))
                    })?;
                    rows.collect::<Result<Vec<_>, _>>()
                })
                .await
                .unwrap_or_default();
            let mut html = String::from("<section id=\"deploys\"><h2>Deploys</h2>");
            if rows.is_empty() {
                html.push_str("<p class=\"muted\">No deploy yet: run <code>tend deploy</code> or push to the webhook.</p>");
            } else {
                html.push_str("<table><thead><tr><th>#</th><th>Started</th><th>By</th><th>Commit</th><th>Hosts</th><th>Result</th></tr></thead><tbody>");
                for (id, at, trigger, commit, hosts, state) in rows {
                    let class = match state.as_str() {
                        "succeeded" => "up",
                        "failed" | "abandoned" => "down",
                        _ => "unknown",
                    };
                    let _ = write!(
                        html,
                        "<tr><td><a href=\"/api/deploys/{id}\">{id}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td>\
                         <td>{}</td><td class=\"{class}\">{}</td></tr>",
                        crate::core::time::rfc3339(crate::core::time::from_millis(at)),
                        escape(&trigger),
                        escape(
                            &commit
                                .unwrap_or_default()
                                .chars()
                                .take(12)
                                .collect::<String>()
                        ),
                        hosts.split(' ').filter(|h| !h.is_empty()).count(),
                        escape(&state)
                    );
                }
                html.push_str("</tbody></table>");
            }
            html.push_str("</section>");
            html
        })
    }
}
