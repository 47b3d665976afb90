//! The monitor as a daemon part: runs the [`Scheduler`], persists tracker states and history, turns its
//! alerts into [`crate::alert::Alert`]s (holding them back during maintenance and silences, see [`Quiet`]),
//! and keeps the live view that the status page, the JSON API, the badges and `/metrics` read.
//!
//! Writes are batched: check reports are buffered and written in one transaction per second, so ten thousand
//! targets cost a few transactions a second, not thousands. Raw results older than `history.raw_retention`
//! are rolled up into hourly aggregates; uptime over 24 h, 7 d and 30 d is computed from both, once a minute,
//! never per page view.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::check::{Checker, CheckerError, Phase};
use super::config::MonitorConfig;
use super::maintenance::{MaintenanceConfig, Windows};
use super::quiet::Quiet;
use super::scheduler::{Message, Report, Scheduler};
use super::share::{Sharing, place};
use super::spread::Spread;
use super::storm::Alert as StormAlert;
use super::tracker::State;
use super::view::{SPARK, SharedView, SilenceView, View, WindowView};
use super::{alerts, store};
use crate::alert::Alerter;
use crate::core::Invalid;
use crate::core::time::{millis, rfc3339};
use crate::metrics::{Counter, Gauge, Metrics};
use crate::store::{Store, StoreError};

/// Why the monitor could not start (a failure inside the loop is logged, never this).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The stored states could not be read.
    #[error("cannot read the monitor states: {0}")]
    Store(#[from] StoreError),
    /// The HTTP/TLS client could not be built.
    #[error(transparent)]
    Checker(#[from] CheckerError),
    /// A target could not be compiled (run `tend check-config`).
    #[error(transparent)]
    Target(#[from] Invalid),
}

/// The monitor part (cheap to clone: the supervisor makes a fresh run from a clone after a failure).
#[derive(Clone)]
pub struct MonitorService {
    config: MonitorConfig,
    /// Target names by index, shared with the store writes (built once, not per batch).
    names: Arc<[String]>,
    /// Target indexes by name (for the states other replicas share).
    index: Arc<std::collections::HashMap<String, usize>>,
    store: Store,
    metrics: Metrics,
    alerter: Alerter,
    view: SharedView,
    maintenance: Vec<MaintenanceConfig>,
    sharing: Option<Arc<Sharing>>,
}

/// The per-target series, created once so a check updates atomics and takes no registry lock.
struct Gauges {
    up: Gauge,
    response: Gauge,
    phases: [Gauge; 5],
}

impl MonitorService {
    /// A monitor part for `config`; `view` is what the web section reads.
    pub fn new(
        config: MonitorConfig,
        store: Store,
        metrics: Metrics,
        alerter: Alerter,
    ) -> MonitorService {
        let view = Arc::new(RwLock::new(View::new(&config)));
        MonitorService {
            names: config.target.iter().map(|t| t.name.clone()).collect(),
            index: Arc::new(
                (config.target.iter().enumerate())
                    .map(|(i, t)| (t.name.clone(), i))
                    .collect(),
            ),
            config,
            store,
            metrics,
            alerter,
            view,
            maintenance: Vec::new(),
            sharing: None,
        }
    }

    /// With `[cluster]`: the targets are shared out among the replicas (see [`Sharing`]).
    pub fn with_sharing(mut self, sharing: Arc<Sharing>) -> MonitorService {
        self.sharing = Some(sharing);
        self
    }

    /// The `[[maintenance]]` windows whose targets get no alert while they are open.
    pub fn with_maintenance(mut self, windows: Vec<MaintenanceConfig>) -> MonitorService {
        self.maintenance = windows;
        self
    }

    /// The live view (for the status page and API).
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// Runs until `shutdown`: checks, persistence, alerts.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MonitorError> {
        let states = store::load_states(&self.store, self.names.clone()).await?;
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
        let now = millis(SystemTime::now());
        let series =
            store::series(&self.store, self.names.clone(), now, &self.config.history).await?;
        {
            let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
            for (v, s) in view.targets.iter_mut().zip(series) {
                v.series = s;
            }
        }
        let windows = Windows::new(&self.maintenance)?;
        let mut quiet = Quiet::load(self.store.clone(), self.names.clone(), windows).await?;
        self.show_quiet(&quiet);
        let gauges = self.gauges();
        let checker = Checker::new(&self.config)?;
        let (tx, mut rx) = mpsc::channel(8192);
        let mut scheduler = Scheduler::new(&self.config, checker, states, tx)?;
        if let Some(sharing) = &self.sharing {
            sharing.settle(Duration::from_secs(10)).await;
            scheduler = scheduler.with_spread(Spread {
                sharing: sharing.clone(),
                disagreements: self.metrics.counter(
                    "tend_monitor_disagreements_total",
                    "Changes of state (down, up again) that other replicas did not confirm; not alerted.",
                    &[],
                ),
            });
        }
        let mut shared_changes = self.sharing.as_ref().map(|s| s.changes());
        let mut shared_seen = std::collections::HashMap::new();
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
                        self.apply(&report, &ups, &downs, &gauges);
                        pending.push(*report);
                        if pending.len() >= 2000 {
                            self.persist(std::mem::take(&mut pending)).await;
                        }
                    }
                    Some(Message::Alert(alert)) => {
                        if let Some(alert) = quiet.filter(alert, SystemTime::now()).await {
                            self.alert(alert);
                        }
                    }
                    None => break,
                },
                _ = flush.tick() => {
                    if !pending.is_empty() {
                        self.persist(std::mem::take(&mut pending)).await;
                    }
                    self.quiet_tick(&mut quiet).await;
                    if let Some(changes) = &mut shared_changes {
                        if changes.has_changed().unwrap_or(false) {
                            changes.mark_unchanged();
                            self.show_shared(&gauges, &mut shared_seen);
                        }
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

    fn gauges(&self) -> Vec<Gauges> {
        self.names
            .iter()
            .map(|name| {
                let labels = [("target", name.as_str())];
                Gauges {
                    up: self.metrics.gauge(
                        "tend_monitor_up",
                        "1 when the target is up, 0 when down, -1 unknown.",
                        &labels,
                    ),
                    response: self.metrics.gauge(
                        "tend_monitor_response_seconds",
                        "Duration of the last check.",
                        &labels,
                    ),
                    phases: Phase::ALL.map(|p| {
                        self.metrics.gauge(
                            "tend_monitor_phase_seconds",
                            "Time of each phase of the last check: dns, connect, tls, ttfb (to the response \
                             headers), transfer (the body).",
                            &[("target", name.as_str()), ("phase", p.as_str())],
                        )
                    }),
                }
            })
            .collect()
    }

    fn apply(&self, r: &Report, ups: &Counter, downs: &Counter, gauges: &[Gauges]) {
        let o = &r.outcome;
        if o.up {
            ups.inc()
        } else {
            downs.inc()
        }
        let (Some(target), Some(g)) = (self.config.target.get(r.index), gauges.get(r.index)) else {
            return;
        };
        let labels = [("target", target.name.as_str())];
        g.up.set(match r.state.state {
            State::Up => 1.0,
            State::Down => 0.0,
            State::Unknown => -1.0,
        });
        g.response.set(o.response_time.as_secs_f64());
        for p in Phase::ALL {
            g.phases[p as usize].set(o.phases.get(p).as_secs_f64());
        }
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
            v.phases = Some(o.phases);
            v.failed_phase = o.failed_phase;
            if let Some(sharing) = &self.sharing {
                v.checked_by = Some(place(sharing.me(), sharing.zone()));
                if !r.seen_from.is_empty() {
                    v.seen_from = r.seen_from.clone();
                }
            }
            v.series.record(millis(o.checked_at), o.up, &o.phases);
        }
    }

    /// Shows the targets other replicas check as they shared them (state, since, reason, where from), on the
    /// page and in `tend_monitor_up`; this replica's own checks show what it saw.
    fn show_shared(&self, gauges: &[Gauges], seen: &mut std::collections::HashMap<String, u64>) {
        let Some(sharing) = &self.sharing else { return };
        let me = place(sharing.me(), sharing.zone());
        let changed = sharing.changed(seen);
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        for t in changed {
            let Some(&i) = self.index.get(&t.name) else {
                continue;
            };
            let Some(v) = view.targets.get_mut(i) else {
                continue;
            };
            v.seen_from = t.seen_from;
            if t.checked_by == me {
                continue;
            }
            v.state = t.tracker.state.as_str();
            v.since = t.tracker.since.map(rfc3339);
            v.reason = t.reason;
            v.checked_by = Some(t.checked_by);
            if let Some(g) = gauges.get(i) {
                g.up.set(match t.tracker.state {
                    State::Up => 1.0,
                    State::Down => 0.0,
                    State::Unknown => -1.0,
                });
            }
        }
    }

    /// Sends the held alerts whose quiet time is over, and shows windows, silences and covers on the view.
    async fn quiet_tick(&self, quiet: &mut Quiet) {
        let now = SystemTime::now();
        let view = self.view.clone();
        let is_down = move |i: usize| {
            let view = view.read().unwrap_or_else(|p| p.into_inner());
            view.targets.get(i).is_some_and(|t| t.state == "down")
        };
        for alert in quiet.release_due(now, is_down).await {
            self.alert(alert);
        }
        // One indexed read a second: a silence set by `tend silence` shows (and counts) at once.
        quiet.refresh(now).await;
        let shown = {
            let view = self.view.read().unwrap_or_else(|p| p.into_inner());
            !view.windows.is_empty() || !view.silences.is_empty()
        };
        if quiet.anything() || shown {
            self.show_quiet(quiet);
        }
    }

    /// Writes the windows, the silences and each target's cover into the view.
    fn show_quiet(&self, quiet: &Quiet) {
        let now = SystemTime::now();
        let windows: Vec<WindowView> = quiet
            .windows()
            .0
            .iter()
            .map(|w| WindowView {
                name: w.name.clone(),
                targets: w.targets.clone(),
                schedule: w.schedule(),
                status: w.status(now),
                reason: w.reason.clone(),
            })
            .collect();
        let silences: Vec<SilenceView> = quiet
            .silences()
            .iter()
            .map(|s| SilenceView {
                target: s.target.clone(),
                until: rfc3339(s.until),
                by: s.by.clone(),
                reason: s.reason.clone(),
            })
            .collect();
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        for t in view.targets.iter_mut() {
            t.quiet = quiet.cover(&t.name, now);
            t.alert_held = quiet.is_held(&t.name);
        }
        view.windows = windows;
        view.silences = silences;
    }

    fn alert(&self, alert: StormAlert) {
        self.alerter.raise(alerts::compose(&alert, &self.config));
    }

    async fn persist(&self, reports: Vec<Report>) {
        if let Err(error) = store::save(&self.store, self.names.clone(), reports).await {
            tracing::error!(%error, "Cannot store monitor results");
        }
    }

    async fn refresh_uptime(&self) {
        let now = millis(SystemTime::now());
        match store::uptimes(&self.store, now, &self.config.history).await {
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
        if let Err(error) = store::rollup(&self.store, now, &self.config.history).await {
            tracing::warn!(%error, "Cannot roll up monitor history");
        }
    }
}
