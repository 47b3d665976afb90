//! Alerting: [`Alerter::send`] never blocks and never loses an alert.
//!
//! `send` stamps the alert and hands it to a background thread over a lock-free queue (a few hundred
//! nanoseconds; no I/O on the caller's thread). That thread runs its own small tokio runtime, so alerting works
//! in any program and keeps working while the host's runtime is busy or shutting down. It
//! 1. writes each alert into the SQLite outbox first ([`outbox::record`]: one row per key per dedup window),
//! 2. plans messages with the pure [`plan::plan`] (group wait, "and N more like this", storm digests),
//! 3. delivers every message to every notifier, retrying failures with capped exponential backoff, and records
//!    each delivery, so pending alerts survive a restart and go out after it.
//!
//! The one window where an alert lives only in memory is between `send` returning and the outbox write (at most
//! a few milliseconds: the thread polls every 5 ms while alerts flow, and the first alert after a quiet second wakes
//! it at once); `fatal!` and a graceful shutdown flush it. See [`outbox`] for the one duplicate that SMTP
//! semantics can force.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::core::Level;
use crate::core::time::millis;
use crate::metrics::{Counter, Metrics};
use crate::store::{Store, StoreError};

pub mod config;
pub mod file;
pub mod outbox;
pub mod plan;
pub mod smtp;
pub mod webhook;

pub use config::{AlertConfig, NotifierConfig};

/// Something the team must hear about.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Dedup key: the event's stable name and what it is about (`MonitorDown:website`).
    pub key: String,
    /// How serious; the subject is prefixed with it (`ERROR: ...`).
    pub severity: Level,
    /// One line.
    pub subject: String,
    /// Plain text with the details.
    pub body: String,
}

impl Alert {
    /// An alert for the event `event` about `subject_of` (a target, host or instance).
    pub fn event(
        event: &str,
        about: &str,
        severity: Level,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Alert {
        Alert {
            key: format!("{event}:{about}"),
            severity,
            subject: subject.into(),
            body: body.into(),
        }
    }
}

/// A planned message, as notifiers receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Outbox id (stable across retries; part of the mail's Message-ID).
    pub id: i64,
    /// When it was planned.
    pub created_at: SystemTime,
    /// How serious.
    pub severity: Level,
    /// Subject without the severity prefix.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The alert keys it reports.
    pub keys: Vec<String>,
}

impl Message {
    /// The subject as sent: `ERROR: ...`.
    pub fn full_subject(&self) -> String {
        format!("{}: {}", self.severity.as_upper(), self.subject)
    }
}

/// Why a notifier could not deliver.
#[derive(Debug, thiserror::Error)]
#[error("{notifier}: {reason}")]
pub struct NotifyError {
    /// The notifier's name.
    pub notifier: String,
    /// What went wrong (never contains a secret).
    pub reason: String,
}

/// Why the alerter could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A notifier's settings could not be turned into a client.
    #[error("notifier {name}: {reason}")]
    Notifier {
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The background thread could not start.
    #[error("cannot start the alert thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A configured notifier.
pub enum Notifier {
    /// SMTP.
    Smtp(smtp::SmtpNotifier),
    /// HTTP POST.
    Webhook(webhook::WebhookNotifier),
    /// `.eml` files.
    File(file::FileNotifier),
}

impl Notifier {
    /// Builds the client for a config entry.
    pub fn build(config: &NotifierConfig, name: &str) -> Result<Notifier, AlertError> {
        let err = |reason: String| AlertError::Notifier {
            name: name.to_string(),
            reason,
        };
        Ok(match config {
            NotifierConfig::Smtp(c) => Notifier::Smtp(smtp::SmtpNotifier::new(c).map_err(err)?),
            NotifierConfig::Webhook(c) => {
                Notifier::Webhook(webhook::WebhookNotifier::new(c).map_err(err)?)
            }
            NotifierConfig::File(c) => Notifier::File(file::FileNotifier::new(c)),
        })
    }

    /// Delivers one message; an error is retried later.
    pub async fn deliver(&self, message: &Message) -> Result<(), String> {
        match self {
            Notifier::Smtp(n) => n.deliver(message).await,
            Notifier::Webhook(n) => n.deliver(message).await,
            Notifier::File(n) => n.deliver(message).await,
        }
    }
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Deliveries still pending when it returned (0 = everything went out).
    pub undelivered: i64,
}

/// `(notifier, accepted?, error)` for each notifier, from [`Alerter::notify_now`].
pub type NotifyReport = Vec<(String, Result<(), String>)>;

enum Cmd {
    Alert(Alert, i64),
    Flush(Instant, oneshot::Sender<FlushReport>),
    Now(Alert, Instant, oneshot::Sender<NotifyReport>),
    Stop(Instant, oneshot::Sender<()>),
}

/// The hand-off from `send` to the alert thread: a lock-free queue, plus a wake-up that a sender pays for (a
/// futex syscall) only when the thread has parked after a quiet second. While alerts flow, the thread polls
/// the queue every few milliseconds instead, so `send` stays a queue push.
struct Inbox {
    tx: std::sync::mpsc::Sender<Cmd>,
    wake: Arc<tokio::sync::Notify>,
    parked: Arc<AtomicBool>,
}

impl Inbox {
    /// Queues a command; `urgent` ones (flush, stop) always wake the thread.
    fn push(&self, cmd: Cmd, urgent: bool) -> Result<(), ()> {
        self.tx.send(cmd).map_err(|_| ())?;
        if self.parked.swap(false, Ordering::AcqRel) || urgent {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// How often the alert thread looks at its queue while alerts flow.
const POLL: Duration = Duration::from_millis(5);
/// Quiet time after which the thread parks and asks senders to wake it.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// The handle programs send alerts through; cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    inbox: Arc<Inbox>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Alerter")
    }
}

impl Alerter {
    /// Builds the notifiers and starts the background thread.
    pub fn start(
        config: &AlertConfig,
        store: Store,
        metrics: &Metrics,
    ) -> Result<Alerter, AlertError> {
        // The alert thread's own runtime, made here so that notifiers (lettre's connection pool spawns a
        // task when built) are built inside it and a bad notifier is an error at start, not in the thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AlertError::Thread)?;
        let names = config.notifier_names();
        let mut notifiers = Vec::new();
        {
            let _inside = rt.enter();
            for (c, name) in config.notifier.iter().zip(&names) {
                notifiers.push((name.clone(), Arc::new(Notifier::build(c, name)?)));
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let inbox = Arc::new(Inbox {
            tx,
            wake: Arc::new(tokio::sync::Notify::new()),
            parked: Arc::new(AtomicBool::new(false)),
        });
        let (wake, parked) = (inbox.wake.clone(), inbox.parked.clone());
        let store_for_gauge = store.clone();
        metrics.gauge_fn(
            "tend_alert_outbox_undelivered",
            "Deliveries waiting in the outbox (all notifiers).",
            move || {
                let n = store_for_gauge
                    .blocking(|c| outbox::undelivered(c))
                    .unwrap_or(-1);
                vec![(vec![], n as f64)]
            },
        );
        let worker = Worker {
            store,
            notifiers,
            grouping: plan::Grouping {
                group_wait: config.group_wait,
                dedup_window: config.dedup_window,
                storm_limit: config.storm_limit,
            },
            retry_initial: config.retry_initial,
            retry_max: config.retry_max,
            delivered: metrics.counter(
                "tend_alert_deliveries_total",
                "Delivery attempts by result.",
                &[("result", "ok")],
            ),
            failed: metrics.counter(
                "tend_alert_deliveries_total",
                "Delivery attempts by result.",
                &[("result", "error")],
            ),
            alerts: metrics.counter("tend_alerts_total", "Alerts sent to the alerter.", &[]),
        };
        let thread = std::thread::Builder::new()
            .name("tend-alert".into())
            .spawn(move || rt.block_on(worker.run(rx, wake, parked)))
            .map_err(AlertError::Thread)?;
        Ok(Alerter {
            inbox,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues an alert and returns at once.
    pub fn send(&self, alert: Alert) {
        let now = millis(SystemTime::now());
        if self.inbox.push(Cmd::Alert(alert, now), false).is_err() {
            tracing::warn!(alert = false, "Alerter is stopped; an alert was not queued");
        }
    }

    /// Blocks until every queued alert is planned and delivered, or `timeout` passes. Never call it from a
    /// single-threaded async runtime's thread; use [`Alerter::flush_async`] there.
    pub fn flush(&self, timeout: Duration) -> FlushReport {
        let (reply, rx) = oneshot::channel();
        if self
            .inbox
            .push(Cmd::Flush(Instant::now() + timeout, reply), true)
            .is_err()
        {
            return FlushReport { undelivered: -1 };
        }
        rx.blocking_recv()
            .unwrap_or(FlushReport { undelivered: -1 })
    }

    /// [`Alerter::flush`] for async callers.
    pub async fn flush_async(&self, timeout: Duration) -> FlushReport {
        let (reply, rx) = oneshot::channel();
        if self
            .inbox
            .push(Cmd::Flush(Instant::now() + timeout, reply), true)
            .is_err()
        {
            return FlushReport { undelivered: -1 };
        }
        rx.await.unwrap_or(FlushReport { undelivered: -1 })
    }

    /// Sends one message at once through every notifier (no grouping), waiting up to `timeout` for each
    /// notifier's first attempt. A failed delivery stays in the outbox and is retried later.
    pub async fn notify_now(&self, alert: Alert, timeout: Duration) -> NotifyReport {
        let (reply, rx) = oneshot::channel();
        if self
            .inbox
            .push(Cmd::Now(alert, Instant::now() + timeout, reply), true)
            .is_err()
        {
            return vec![];
        }
        rx.await.unwrap_or_default()
    }

    /// Writes every queued alert to the outbox, tries due deliveries until `timeout`, and stops the thread.
    pub async fn stop(&self, timeout: Duration) {
        let (reply, rx) = oneshot::channel();
        if self
            .inbox
            .push(Cmd::Stop(Instant::now() + timeout, reply), true)
            .is_ok()
        {
            let _ = rx.await;
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

struct Worker {
    store: Store,
    notifiers: Vec<(String, Arc<Notifier>)>,
    grouping: plan::Grouping,
    retry_initial: Duration,
    retry_max: Duration,
    delivered: Counter,
    failed: Counter,
    alerts: Counter,
}

struct Outcome {
    message: i64,
    notifier: String,
    attempts: u32,
    result: Result<(), String>,
}

struct Waiter<T> {
    deadline: Instant,
    reply: oneshot::Sender<T>,
}

impl Worker {
    async fn run(
        self,
        rx: std::sync::mpsc::Receiver<Cmd>,
        wake_up: Arc<tokio::sync::Notify>,
        parked: Arc<AtomicBool>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
        let mut inflight: HashSet<(i64, String)> = HashSet::new();
        let mut flushes: Vec<Waiter<FlushReport>> = Vec::new();
        let mut nows: Vec<(i64, Waiter<NotifyReport>)> = Vec::new();
        let mut stop: Option<Waiter<()>> = None;
        let mut wake = Instant::now();
        let mut active = Instant::now();
        let mut closed = false;
        loop {
            let mut batch = Vec::new();
            let mut flush_now = false;
            let mut recorded = false;
            let drain = |batch: &mut Vec<Cmd>, closed: &mut bool| loop {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        *closed = true;
                        break;
                    }
                }
            };
            drain(&mut batch, &mut closed);
            if batch.is_empty() {
                if closed && stop.is_none() {
                    return;
                }
                // Quiet for a while: park, and have the next sender wake us. Set the flag before looking at
                // the queue once more, so an alert pushed in between is seen now or wakes us.
                let park = active.elapsed() > PARK_AFTER;
                if park {
                    parked.store(true, Ordering::Release);
                    drain(&mut batch, &mut closed);
                }
                if batch.is_empty() {
                    let until = if park {
                        wake
                    } else {
                        wake.min(Instant::now() + POLL)
                    };
                    tokio::select! {
                        _ = wake_up.notified() => {}
                        Some(outcome) = done_rx.recv() => {
                            self.record(outcome, &mut inflight);
                            recorded = true;
                        }
                        _ = tokio::time::sleep_until(until.into()) => {}
                    }
                    parked.store(false, Ordering::Release);
                    drain(&mut batch, &mut closed);
                }
            }
            if !batch.is_empty() {
                active = Instant::now();
            }
            while let Ok(outcome) = done_rx.try_recv() {
                self.record(outcome, &mut inflight);
                recorded = true;
            }
            // A poll that found nothing new, with no timer due and nobody waiting: no store queries.
            let waiting = !flushes.is_empty() || !nows.is_empty() || stop.is_some();
            if batch.is_empty() && !recorded && !waiting && Instant::now() < wake {
                continue;
            }
            let mut alerts = Vec::new();
            let mut immediate = Vec::new();
            for cmd in batch {
                match cmd {
                    Cmd::Alert(a, at) => alerts.push((a, at)),
                    Cmd::Flush(deadline, reply) => {
                        flush_now = true;
                        flushes.push(Waiter { deadline, reply });
                    }
                    Cmd::Now(a, deadline, reply) => immediate.push((a, Waiter { deadline, reply })),
                    Cmd::Stop(deadline, reply) => {
                        flush_now = true;
                        stop = Some(Waiter { deadline, reply });
                    }
                }
            }
            self.alerts.add(alerts.len() as u64);
            if !alerts.is_empty() {
                let window = self.grouping.dedup_window.as_millis() as i64;
                if let Err(error) = self.store.blocking(|c| outbox::record(c, &alerts, window)) {
                    // Keep them in memory and retry on the next turn rather than lose them.
                    tracing::warn!(alert = false, %error, "Cannot write alerts to the outbox; retrying");
                    for (a, at) in alerts {
                        self.record_one(a, at);
                    }
                }
            }
            let now = millis(SystemTime::now());
            for (a, waiter) in immediate {
                let planned = plan::Planned {
                    severity: a.severity,
                    subject: a.subject,
                    body: a.body,
                    rows: vec![],
                    keys: vec![a.key],
                };
                let names: Vec<String> = self.notifiers.iter().map(|(n, _)| n.clone()).collect();
                match self
                    .store
                    .blocking(|c| outbox::create_messages(c, &[planned], &names, now))
                {
                    Ok(ids) => nows.push((ids[0], waiter)),
                    Err(error) => {
                        let _ = waiter
                            .reply
                            .send(vec![("outbox".into(), Err(error.to_string()))]);
                    }
                }
            }
            let next_plan = self.plan(now, flush_now);
            self.start_due(now, &mut inflight, &done_tx);
            // Answer waiters whose condition is met or whose time is up.
            let undelivered = self
                .store
                .blocking(|c| outbox::undelivered(c))
                .unwrap_or(-1);
            let at = Instant::now();
            let mut keep = Vec::new();
            for w in flushes.drain(..) {
                if undelivered == 0 || at >= w.deadline {
                    let _ = w.reply.send(FlushReport { undelivered });
                } else {
                    keep.push(w);
                }
            }
            flushes = keep;
            let mut keep = Vec::new();
            for (id, w) in nows.drain(..) {
                let states = self
                    .store
                    .blocking(|c| outbox::deliveries_of(c, id))
                    .unwrap_or_default();
                let settled = states
                    .iter()
                    .all(|(_, ok, attempts, _)| *ok || *attempts > 0);
                if settled || at >= w.deadline {
                    let report = states
                        .into_iter()
                        .map(|(n, ok, attempts, err)| {
                            let r = if ok {
                                Ok(())
                            } else if attempts == 0 {
                                Err("no answer before the timeout (kept in the outbox)".into())
                            } else {
                                Err(err.unwrap_or_default())
                            };
                            (n, r)
                        })
                        .collect();
                    let _ = w.reply.send(report);
                } else {
                    keep.push((id, w));
                }
            }
            nows = keep;
            if let Some(w) = stop.take() {
                if undelivered == 0
                    || at >= w.deadline
                    || inflight.is_empty() && !self.any_due_now()
                {
                    let _ = w.reply.send(());
                    return;
                }
                stop = Some(w);
            }
            let next_retry = self.store.blocking(|c| outbox::next_due(c)).ok().flatten();
            let mut next = Instant::now() + Duration::from_secs(60);
            for ms in [next_plan, next_retry].into_iter().flatten() {
                let delay = Duration::from_millis((ms - millis(SystemTime::now())).max(0) as u64);
                next = next.min(Instant::now() + delay.max(Duration::from_millis(20)));
            }
            if !flushes.is_empty() || !nows.is_empty() || stop.is_some() {
                next = next.min(Instant::now() + Duration::from_millis(50));
            }
            wake = next;
        }
    }

    /// The store refused a batch: try each alert on its own so one bad row cannot sink the others.
    fn record_one(&self, alert: Alert, at: i64) {
        let window = self.grouping.dedup_window.as_millis() as i64;
        let subject = alert.subject.clone();
        if let Err(error) = self
            .store
            .blocking(|c| outbox::record(c, &[(alert, at)], window))
        {
            tracing::error!(alert = false, %error, %subject, "An alert could not be written to the outbox");
        }
    }

    fn plan(&self, now: i64, flush: bool) -> Option<i64> {
        let result = self.store.blocking(|c| {
            let rows = outbox::pending(c)?;
            let recent = outbox::sent_since(c, now - 60_000)?;
            Ok((rows, recent))
        });
        let (rows, recent) = match result {
            Ok(x) => x,
            Err(error) => {
                tracing::warn!(alert = false, %error, "Cannot read the outbox");
                return Some(now + 1000);
            }
        };
        let (planned, next) = plan::plan(&rows, recent, now, &self.grouping, flush);
        if !planned.is_empty() {
            let names: Vec<String> = self.notifiers.iter().map(|(n, _)| n.clone()).collect();
            if let Err(error) = self
                .store
                .blocking(|c| outbox::create_messages(c, &planned, &names, now))
            {
                tracing::warn!(alert = false, %error, "Cannot store planned messages");
                return Some(now + 1000);
            }
        }
        next
    }

    fn any_due_now(&self) -> bool {
        let now = millis(SystemTime::now());
        self.store
            .blocking(|c| outbox::due(c, now, 1))
            .map(|d| !d.is_empty())
            .unwrap_or(false)
    }

    fn start_due(
        &self,
        now: i64,
        inflight: &mut HashSet<(i64, String)>,
        done: &mpsc::UnboundedSender<Outcome>,
    ) {
        let due = match self.store.blocking(|c| outbox::due(c, now, 256)) {
            Ok(d) => d,
            Err(error) => {
                tracing::warn!(alert = false, %error, "Cannot read due deliveries");
                return;
            }
        };
        for d in due {
            let key = (d.message.id, d.notifier.clone());
            if inflight.contains(&key) {
                continue;
            }
            let Some((_, notifier)) = self.notifiers.iter().find(|(n, _)| *n == d.notifier) else {
                // The notifier was removed from the config: record that instead of retrying forever.
                let _ = self.store.blocking(|c| {
                    outbox::failed(
                        c,
                        d.message.id,
                        &d.notifier,
                        i64::MAX,
                        "notifier no longer configured",
                    )
                });
                continue;
            };
            inflight.insert(key);
            let notifier = notifier.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let result = notifier.deliver(&d.message).await;
                let _ = done.send(Outcome {
                    message: d.message.id,
                    notifier: d.notifier,
                    attempts: d.attempts + 1,
                    result,
                });
            });
        }
    }

    fn record(&self, o: Outcome, inflight: &mut HashSet<(i64, String)>) {
        inflight.remove(&(o.message, o.notifier.clone()));
        let now = millis(SystemTime::now());
        let stored = match &o.result {
            Ok(()) => {
                self.delivered.inc();
                self.store
                    .blocking(|c| outbox::delivered(c, o.message, &o.notifier, now))
            }
            Err(reason) => {
                self.failed.inc();
                let delay = plan::backoff(o.attempts, self.retry_initial, self.retry_max);
                // Spread retries a little so that many failed deliveries don't hit a recovering server at once.
                let jitter = fastrand::u64(0..=delay.as_millis() as u64 / 10);
                let next = now + delay.as_millis() as i64 + jitter as i64;
                tracing::warn!(
                    alert = false,
                    notifier = %o.notifier,
                    message = o.message,
                    attempts = o.attempts,
                    error = %reason,
                    retry_in = %humantime::format_duration(delay),
                    "Alert delivery failed; will retry"
                );
                self.store
                    .blocking(|c| outbox::failed(c, o.message, &o.notifier, next, reason))
            }
        };
        if let Err(error) = stored {
            tracing::warn!(alert = false, %error, "Cannot record a delivery result");
        }
    }
}
