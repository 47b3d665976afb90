//! The monitor as a daemon part: runs the [`Scheduler`], persists tracker states and history, turns its
//! alerts into [`crate::alert::Alert`]s, and keeps the live view that the status page, the JSON API and
//! `/metrics` read.
//!
//! Writes are batched: check reports are buffered and written in one transaction per second, so ten thousand
//! targets cost a few transactions a second, not thousands. Raw results older than `history.raw_retention`
//! are rolled up into hourly aggregates; uptime over 24 h, 7 d and 30 d is computed from both, once a minute,
//! never per page view.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rusqlite::params;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::alert::Alerter;
use crate::core::Level;
use crate::core::time::millis;
use crate::metrics::{Counter, Metrics};
use crate::monitor::check::{Checker, Outcome};
use crate::monitor::config::MonitorConfig;
use crate::monitor::scheduler::{Message, Report, Scheduler};
use crate::monitor::storm::{Alert as StormAlert, GroupKind};
use crate::monitor::tracker::{Event, State, TrackerState};
use crate::runtime::PartError;
use crate::store::Store;

/// Response times kept per target for the sparkline.
const SPARK: usize = 30;

/// One target as the page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// Name from the config.
    pub name: String,
    /// What is checked (URL or host:port).
    pub what: String,
    /// up, down, unknown.
    pub state: &'static str,
    /// When the current state began (RFC 3339).
    pub since: Option<String>,
    /// Reason of the last check.
    pub reason: String,
    /// Last response time in milliseconds.
    pub response_ms: Option<u64>,
    /// Days until the certificate expires.
    pub cert_expiry_days: Option<i64>,
    /// Uptime percentages over 24 h, 7 d, 30 d (None until there is history).
    pub uptime: [Option<f64>; 3],
    /// Recent response times in milliseconds, oldest first.
    pub recent_ms: Vec<u64>,
}

/// The live view, shared with the web parts.
#[derive(Debug, Default)]
pub struct View {
    /// Targets in config order.
    pub targets: Vec<TargetView>,
    /// Schedule lag p50 and p99, seconds.
    pub lag: (f64, f64),
}

/// Shared handle to the live view.
pub type SharedView = Arc<RwLock<View>>;

/// The monitor part (cheap to clone: the supervisor makes a fresh run from a clone after a failure).
#[derive(Clone)]
pub struct MonitorService {
    config: MonitorConfig,
    /// Target names by index, shared with the store writes (built once, not per batch).
    names: Arc<[String]>,
    store: Store,
    metrics: Metrics,
    alerter: Alerter,
    view: SharedView,
}

fn what(t: &crate::monitor::TargetConfig) -> String {
    t.url
        .clone()
        .or_else(|| t.tcp.as_ref().map(|a| format!("tcp://{a}")))
        .or_else(|| t.tls.as_ref().map(|a| format!("tls://{a}")))
        .unwrap_or_default()
}

impl MonitorService {
    /// A monitor part for `config`; `view` is what the web section reads.
    pub fn new(
        config: MonitorConfig,
        store: Store,
        metrics: Metrics,
        alerter: Alerter,
    ) -> MonitorService {
        let view = Arc::new(RwLock::new(View {
            targets: config
                .target
                .iter()
                .map(|t| TargetView {
                    name: t.name.clone(),
                    what: what(t),
                    state: "unknown",
                    since: None,
                    reason: "not checked yet".into(),
                    response_ms: None,
                    cert_expiry_days: None,
                    uptime: [None; 3],
                    recent_ms: Vec::new(),
                })
                .collect(),
            lag: (0.0, 0.0),
        }));
        MonitorService {
            names: config.target.iter().map(|t| t.name.clone()).collect(),
            config,
            store,
            metrics,
            alerter,
            view,
        }
    }

    /// The live view (for the status page and API).
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// Runs until `shutdown`: checks, persistence, alerts.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PartError> {
        let states = load_states(&self.store, self.names.clone()).await?;
        {
            let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
            for (v, s) in view.targets.iter_mut().zip(&states) {
                v.state = s.state.as_str();
                v.since = s.since.map(rfc3339);
                if let Some(r) = &s.last_failure {
                    if s.state == State::Down {
                        v.reason = r.clone();
                    }
                }
            }
        }
        let checker = Checker::new(&self.config)?;
        let (tx, mut rx) = mpsc::channel(8192);
        let scheduler = Scheduler::new(&self.config, checker, states, tx)?;
        let lag = scheduler.lag();
        {
            let lag = lag.clone();
            self.metrics.gauge_fn(
                "tend_monitor_schedule_lag_seconds",
                "How late checks start after their slot (quantiles since start).",
                move || {
                    let s = lag.snapshot();
                    [0.5, 0.9, 0.99]
                        .iter()
                        .map(|q| {
                            (
                                vec![("quantile".to_string(), q.to_string())],
                                s.quantile(*q).as_secs_f64(),
                            )
                        })
                        .collect()
                },
            );
        }
        let scheduler_task = tokio::spawn(scheduler.run(shutdown.clone()));
        let ups = self.metrics.counter(
            "tend_monitor_checks_total",
            "Checks by result.",
            &[("result", "up")],
        );
        let downs = self.metrics.counter(
            "tend_monitor_checks_total",
            "Checks by result.",
            &[("result", "down")],
        );
        let mut pending: Vec<Report> = Vec::new();
        let mut flush = tokio::time::interval(Duration::from_secs(1));
        let mut uptime = tokio::time::interval(Duration::from_secs(60));
        let mut rollup = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Message::Checked(report)) => {
                        self.apply(&report, &ups, &downs);
                        pending.push(*report);
                        if pending.len() >= 2000 {
                            self.persist(std::mem::take(&mut pending)).await;
                        }
                    }
                    Some(Message::Alert(alert)) => self.alert(alert),
                    None => break,
                },
                _ = flush.tick() => {
                    if !pending.is_empty() {
                        self.persist(std::mem::take(&mut pending)).await;
                    }
                    let s = lag.snapshot();
                    self.view.write().unwrap_or_else(|p| p.into_inner()).lag =
                        (s.quantile(0.5).as_secs_f64(), s.quantile(0.99).as_secs_f64());
                }
                _ = uptime.tick() => self.refresh_uptime().await,
                _ = rollup.tick() => self.rollup().await,
            }
        }
        // The scheduler has stopped (shutdown): keep what was checked.
        if !pending.is_empty() {
            self.persist(pending).await;
        }
        let _ = scheduler_task.await;
        Ok(())
    }

    fn apply(&self, r: &Report, ups: &Counter, downs: &Counter) {
        let o = &r.outcome;
        if o.up {
            ups.inc()
        } else {
            downs.inc()
        }
        let Some(target) = self.config.target.get(r.index) else {
            return;
        };
        let labels = [("target", target.name.as_str())];
        self.metrics
            .gauge(
                "tend_monitor_up",
                "1 when the target is up, 0 when down, -1 unknown.",
                &labels,
            )
            .set(match r.state.state {
                State::Up => 1.0,
                State::Down => 0.0,
                State::Unknown => -1.0,
            });
        self.metrics
            .gauge(
                "tend_monitor_response_seconds",
                "Duration of the last check.",
                &labels,
            )
            .set(o.response_time.as_secs_f64());
        if let Some(days) = o.cert_expiry_days {
            self.metrics
                .gauge(
                    "tend_monitor_cert_expiry_days",
                    "Days until the certificate expires.",
                    &labels,
                )
                .set(days as f64);
        }
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = view.targets.get_mut(r.index) {
            v.state = r.state.state.as_str();
            v.since = r.state.since.map(rfc3339);
            v.reason = o.reason.clone();
            v.response_ms = Some(o.response_time.as_millis() as u64);
            v.cert_expiry_days = o.cert_expiry_days.or(v.cert_expiry_days);
            if v.recent_ms.len() >= SPARK {
                v.recent_ms.remove(0);
            }
            v.recent_ms.push(o.response_time.as_millis() as u64);
        }
    }

    fn alert(&self, alert: StormAlert) {
        let name_of = |i: usize| {
            self.config
                .target
                .get(i)
                .map_or("?", |t| t.name.as_str())
                .to_string()
        };
        let a = match &alert {
            StormAlert::Single { index, event } => {
                let name = name_of(*index);
                let what = self.config.target.get(*index).map(what).unwrap_or_default();
                match event {
                    Event::MonitorDown { since, reason } => crate::alert::Alert::event(
                        "MonitorDown",
                        &name,
                        Level::Error,
                        format!("{name} is down: {reason}"),
                        format!(
                            "{name} ({what}) is down since {}.\nLast check: {reason}",
                            rfc3339(*since)
                        ),
                    ),
                    Event::MonitorStillDown {
                        since,
                        down_for,
                        reason,
                    } => crate::alert::Alert::event(
                        "MonitorStillDown",
                        &name,
                        Level::Warning,
                        format!("{name} is still down after {}", human(*down_for)),
                        format!(
                            "{name} ({what}) is down since {}.\nLast check: {reason}",
                            rfc3339(*since)
                        ),
                    ),
                    Event::MonitorUp {
                        downtime,
                        last_failure,
                    } => crate::alert::Alert::event(
                        "MonitorUp",
                        &name,
                        Level::Notice,
                        format!("{name} is up again after {}", human(*downtime)),
                        format!(
                            "{name} ({what}) answers again. It was down for {}; the last failure was: {last_failure}",
                            human(*downtime)
                        ),
                    ),
                }
            }
            StormAlert::Grouped {
                kind,
                targets,
                message,
            } => {
                let list: Vec<String> = targets
                    .iter()
                    .map(|i| format!("- {}", name_of(*i)))
                    .collect();
                let severity = match kind {
                    GroupKind::Down => Level::Error,
                    GroupKind::StillDown => Level::Warning,
                    GroupKind::Up => Level::Notice,
                };
                crate::alert::Alert::event(
                    alert.name(),
                    "storm",
                    severity,
                    message.clone(),
                    format!("{message}\n\nTargets:\n{}", list.join("\n")),
                )
            }
        };
        match a.severity {
            Level::Error => {
                tracing::warn!(alert = false, event = alert.name(), subject = %a.subject, "Monitor alert")
            }
            _ => {
                crate::notice!(alert = false, event = alert.name(), subject = %a.subject, "Monitor alert")
            }
        }
        self.alerter.send(a);
    }

    async fn persist(&self, reports: Vec<Report>) {
        let names = self.names.clone();
        let result = self
            .store
            .call(move |c| {
                let tx = c.transaction()?;
                {
                    let mut state = tx.prepare_cached(
                        "INSERT INTO monitor_state (target, state, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(target) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                    )?;
                    let mut result = tx.prepare_cached(
                        "INSERT INTO monitor_results (target, at, up, response_ms, status, reason)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for r in &reports {
                        let Some(name) = names.get(r.index) else { continue };
                        let o: &Outcome = &r.outcome;
                        let json = serde_json::to_string(&r.state).unwrap_or_default();
                        let at = millis(o.checked_at);
                        state.execute(params![name, json, at])?;
                        result.execute(params![
                            name,
                            at,
                            o.up,
                            o.response_time.as_millis() as i64,
                            o.status,
                            o.reason
                        ])?;
                    }
                }
                tx.commit()
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "Cannot store monitor results");
        }
    }

    async fn refresh_uptime(&self) {
        let now = millis(SystemTime::now());
        let raw_from = now - self.config.history.raw_retention.as_millis() as i64;
        let windows = [24 * 3_600_000_i64, 7 * 24 * 3_600_000, 30 * 24 * 3_600_000];
        let result = self
            .store
            .call(move |c| {
                let mut out: HashMap<String, [Option<f64>; 3]> = HashMap::new();
                for (i, w) in windows.iter().enumerate() {
                    let from = now - w;
                    let mut stmt = c.prepare_cached(
                        "SELECT target, SUM(ups), SUM(checks) FROM (
                            SELECT target, SUM(up) AS ups, COUNT(*) AS checks FROM monitor_results
                              WHERE at >= ?1 GROUP BY target
                            UNION ALL
                            SELECT target, SUM(ups), SUM(checks) FROM monitor_hourly
                              WHERE hour >= ?1 AND hour < ?2 GROUP BY target)
                         GROUP BY target",
                    )?;
                    let rows = stmt.query_map(params![from, raw_from.max(from)], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })?;
                    for row in rows {
                        let (t, ups, checks) = row?;
                        if checks > 0 {
                            out.entry(t).or_default()[i] = Some(100.0 * ups as f64 / checks as f64);
                        }
                    }
                }
                Ok(out)
            })
            .await;
        match result {
            Ok(uptimes) => {
                let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
                for v in view.targets.iter_mut() {
                    if let Some(u) = uptimes.get(&v.name) {
                        v.uptime = *u;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "Cannot compute uptime"),
        }
    }

    async fn rollup(&self) {
        let now = millis(SystemTime::now());
        let raw_before = now - self.config.history.raw_retention.as_millis() as i64;
        let raw_before = raw_before - raw_before.rem_euclid(3_600_000);
        let hourly_before = now - self.config.history.hourly_retention.as_millis() as i64;
        let result = self
            .store
            .call(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO monitor_hourly (target, hour, checks, ups, response_ms_sum, response_ms_max)
                     SELECT target, at - (at % 3600000), COUNT(*), SUM(up), SUM(response_ms), MAX(response_ms)
                       FROM monitor_results WHERE at < ?1 GROUP BY target, at - (at % 3600000)
                     ON CONFLICT(target, hour) DO UPDATE SET checks = checks + excluded.checks,
                       ups = ups + excluded.ups, response_ms_sum = response_ms_sum + excluded.response_ms_sum,
                       response_ms_max = MAX(response_ms_max, excluded.response_ms_max)",
                    [raw_before],
                )?;
                tx.execute("DELETE FROM monitor_results WHERE at < ?1", [raw_before])?;
                tx.execute("DELETE FROM monitor_hourly WHERE hour < ?1", [hourly_before])?;
                tx.commit()
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "Cannot roll up monitor history");
        }
    }
}

async fn load_states(store: &Store, names: Arc<[String]>) -> Result<Vec<TrackerState>, PartError> {
    let states = store
        .call(move |c| {
            let mut stmt = c.prepare("SELECT state FROM monitor_state WHERE target = ?1")?;
            let mut out = Vec::with_capacity(names.len());
            for n in names.iter() {
                let json: Option<String> =
                    stmt.query_row([n], |r| r.get(0)).map(Some).or_else(|e| {
                        if e == rusqlite::Error::QueryReturnedNoRows {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })?;
                out.push(
                    json.and_then(|j| serde_json::from_str(&j).ok())
                        .unwrap_or_default(),
                );
            }
            Ok(out)
        })
        .await?;
    Ok(states)
}

/// RFC 3339 to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A small inline SVG sparkline of response times.
pub fn sparkline(values: &[u64]) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let max = values.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, h) = (120.0, 24.0);
    let step = w / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 2.0 - (*v as f64 / max) * (h - 4.0)
            )
        })
        .collect();
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" aria-label=\"response times\">\
         <polyline fill=\"none\" stroke=\"#1a73e8\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}
