//! [`Alerter`]: the handle programs send alerts through. `send` is a lock-free queue push; the alert thread
//! (`service.rs`) does the rest. Flush, notify-now and stop are requests to that thread, answered by it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::config::AlertConfig;
use super::message::{Alert, Later};
use super::notifier::{Notifier, NotifierError};
use super::service::{Cmd, FlushReport, NotifyReport, ON_ALERT_THREAD, Worker};
use super::{plan, store};
use crate::core::time::millis;
use crate::core::{Event, Level};
use crate::metrics::{Counter, Metrics};
use crate::store::{Store, StoreError};

/// Why the alerter could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A notifier's settings could not be turned into a client.
    #[error("notifier {name}: {source}")]
    Notifier {
        /// Its name.
        name: String,
        /// What is wrong.
        #[source]
        source: NotifierError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The background thread could not start.
    #[error("cannot start the alert thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The hand-off from `send` to the alert thread: a lock-free queue, plus a wake-up that a sender pays for (a
/// futex syscall) only when the thread has parked after a quiet second. While alerts flow, the thread polls
/// the queue every few milliseconds instead, so `send` stays a queue push.
pub(super) struct Inbox {
    tx: std::sync::mpsc::Sender<Cmd>,
    pub(super) wake: Arc<tokio::sync::Notify>,
    pub(super) parked: Arc<AtomicBool>,
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

/// The handle programs send alerts through; cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    inbox: Arc<Inbox>,
    events: Arc<[Counter]>,
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
                let notifier = Notifier::build(c).map_err(|source| AlertError::Notifier {
                    name: name.clone(),
                    source,
                })?;
                notifiers.push((name.clone(), Arc::new(notifier)));
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let inbox = Arc::new(Inbox {
            tx,
            wake: Arc::new(tokio::sync::Notify::new()),
            parked: Arc::new(AtomicBool::new(false)),
        });
        let store_for_gauge = store.clone();
        metrics.gauge_fn(
            "tend_alert_outbox_undelivered",
            "Deliveries waiting in the outbox (all notifiers).",
            move || {
                let n = store_for_gauge
                    .blocking(|c| store::undelivered(c))
                    .unwrap_or(-1);
                vec![(vec![], n as f64)]
            },
        );
        let grouping = plan::Grouping {
            group_wait: config.group_wait,
            dedup_window: config.dedup_window,
            storm_limit: config.storm_limit,
        };
        let worker = Worker::new(store, notifiers, grouping, config, metrics);
        let (wake, parked) = (inbox.wake.clone(), inbox.parked.clone());
        let thread = std::thread::Builder::new()
            .name("tend-alert".into())
            .spawn(move || {
                ON_ALERT_THREAD.set(true);
                rt.block_on(worker.run(rx, wake, parked))
            })
            .map_err(AlertError::Thread)?;
        let events = Event::ALL
            .iter()
            .map(|e| {
                metrics.counter(
                    "tend_events_total",
                    "Alerts raised, by event name.",
                    &[("event", e.name())],
                )
            })
            .collect();
        Ok(Alerter {
            inbox,
            events,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues an alert and returns at once.
    pub fn send(&self, alert: Alert) {
        self.queue(alert.event, |now| Cmd::Alert(alert, now));
    }

    /// Queues an alert for `event` that the alert thread finishes by calling [`Later::finish`] (details that
    /// are slow to produce, such as formatting a long body or symbolising a backtrace, so the caller only hands
    /// over what it saw), and returns at once. A `finish` that panics loses that alert, not the alert thread.
    pub fn send_later(&self, event: Event, later: Box<dyn Later>) {
        self.queue(event, |now| Cmd::Later(later, now));
    }

    /// Counts `event` and queues the command made with the time (ms).
    fn queue(&self, event: Event, cmd: impl FnOnce(i64) -> Cmd) {
        if let Some(counter) = self.events.get(event.index()) {
            counter.inc();
        }
        let now = millis(SystemTime::now());
        if self.inbox.push(cmd(now), false).is_err() {
            tracing::warn!(alert = false, "Alerter is stopped; an alert was not queued");
        }
    }

    /// Blocks until every alert queued before this call is written to the outbox (not delivered: a running
    /// alerter, or the next one on the same store, delivers it), or `timeout` passes; true when written. Safe on
    /// any thread but the alert thread's own, where it returns false at once.
    pub fn wait_recorded(&self, timeout: Duration) -> bool {
        if super::service::on_alert_thread() {
            return false;
        }
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        if self.inbox.push(Cmd::Recorded(reply), true).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// Logs the alert's subject at its severity, with its `event` and `about` fields, and sends it: how a part
    /// tells the team about an event (the log line, the alert key and the metric share the event's name).
    pub fn raise(&self, alert: Alert) {
        let (event, about, subject) = (alert.event.name(), &alert.about, &alert.subject);
        match alert.severity {
            Level::Debug => tracing::debug!(alert = false, event, %about, "{subject}"),
            Level::Info => tracing::info!(alert = false, event, %about, "{subject}"),
            Level::Notice => {
                tracing::info!(notice = true, alert = false, event, %about, "{subject}")
            }
            Level::Warning => tracing::warn!(alert = false, event, %about, "{subject}"),
            Level::Error => tracing::error!(alert = false, event, %about, "{subject}"),
            Level::Fatal => {
                tracing::error!(fatal = true, alert = false, event, %about, "{subject}")
            }
        }
        self.send(alert);
    }

    /// From now on, each message is claimed across replicas before it is delivered (see [`super::claims`]).
    pub fn coordinate(&self, claims: Arc<dyn super::claims::Claims>) {
        if self.inbox.push(Cmd::Coordinate(claims), true).is_err() {
            tracing::warn!(alert = false, "Alerter is stopped; cannot coordinate it");
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
