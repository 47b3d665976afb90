//! The alert thread's loop: take commands from the `Alerter`s, write alerts to the outbox, plan
//! messages, deliver them through every notifier with retries, and answer flush, notify-now and stop requests.
//!
//! Each turn of [`Worker::run`] is: wait for work (poll while alerts flow, park after a quiet second), then
//! [`Worker::turn`]: record, plan, start due deliveries, answer waiters, and compute when to look again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::batch::Batch;
use super::claims::Claims;
use super::config::AlertConfig;
use super::message::{Alert, Later};
use super::notifier::Notifier;
use super::outcome::Outcome;
use super::{plan, store};
use crate::core::time::millis;
use crate::metrics::{Counter, Metrics};
use crate::store::Store;

/// How often the alert thread looks at its queue while alerts flow.
const POLL: Duration = Duration::from_millis(5);
/// How often while a burst flows (the last look found at least `BURST` commands), so the queue and the memory
/// it holds stay small.
const POLL_BURST: Duration = Duration::from_millis(1);
/// Commands in one look that make a burst.
const BURST: usize = 64;
/// Quiet time after which the thread parks and asks senders to wake it.
const PARK_AFTER: Duration = Duration::from_secs(1);

thread_local! {
    /// Set on the alert thread (and so in the delivery tasks of its runtime) for its whole life.
    pub(super) static ON_ALERT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on the alert thread: code that would wait for it (a panic hook) must not wait there.
pub fn on_alert_thread() -> bool {
    ON_ALERT_THREAD.get()
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Deliveries still pending when it returned (0 = everything went out).
    pub undelivered: i64,
}

/// How one notifier took a message sent with [`Alerter::notify_now`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReport {
    /// The notifier accepted it.
    Accepted,
    /// It refused or failed: the reason, as recorded; the message stays in the outbox and is retried.
    Failed(String),
    /// No answer before the timeout (kept in the outbox).
    NoAnswer,
}

/// `(notifier, how it went)` for each notifier, from [`Alerter::notify_now`].
pub type NotifyReport = Vec<(String, DeliveryReport)>;

/// A request to the alert thread.
pub(super) enum Cmd {
    /// An alert and when it was sent (ms).
    Alert(Alert, i64),
    /// An alert to finish on the alert thread, and when it was sent (ms).
    Later(Box<dyn Later>, i64),
    /// Answer once every command queued before it is written to the outbox.
    Recorded(std::sync::mpsc::SyncSender<()>),
    /// Deliver everything, answer by the deadline.
    Flush(Instant, oneshot::Sender<FlushReport>),
    /// Send this one now, without grouping.
    Now(Alert, Instant, oneshot::Sender<NotifyReport>),
    /// Flush what can be flushed by the deadline, then end the thread.
    Stop(Instant, oneshot::Sender<()>),
    /// From now on, claim each message across replicas before delivering it.
    Coordinate(Arc<dyn Claims>),
}

/// Someone waiting for an answer until a deadline.
struct Waiter<T> {
    deadline: Instant,
    reply: oneshot::Sender<T>,
}

/// The alert thread's state.
pub(super) struct Worker {
    pub(super) store: Store,
    pub(super) notifiers: Vec<(String, Arc<Notifier>)>,
    pub(super) grouping: plan::Grouping,
    pub(super) retry_initial: Duration,
    pub(super) retry_max: Duration,
    pub(super) delivered: Counter,
    pub(super) failed: Counter,
    pub(super) alerts: Counter,
    pub(super) inflight: HashSet<(i64, String)>,
    pub(super) claims: Option<Arc<dyn Claims>>,
    flushes: Vec<Waiter<FlushReport>>,
    nows: Vec<(i64, Waiter<NotifyReport>)>,
    stop: Option<Waiter<()>>,
    pub(super) done_tx: mpsc::UnboundedSender<Outcome>,
    pub(super) done_rx: mpsc::UnboundedReceiver<Outcome>,
}

impl Worker {
    pub(super) fn new(
        store: Store,
        notifiers: Vec<(String, Arc<Notifier>)>,
        grouping: plan::Grouping,
        config: &AlertConfig,
        metrics: &Metrics,
    ) -> Worker {
        let deliveries = |result| {
            metrics.counter(
                "tend_alert_deliveries_total",
                "Delivery attempts by result.",
                &[("result", result)],
            )
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Worker {
            store,
            notifiers,
            grouping,
            retry_initial: config.retry_initial,
            retry_max: config.retry_max,
            delivered: deliveries("ok"),
            failed: deliveries("error"),
            alerts: metrics.counter("tend_alerts_total", "Alerts sent to the alerter.", &[]),
            inflight: HashSet::new(),
            claims: None,
            flushes: Vec::new(),
            nows: Vec::new(),
            stop: None,
            done_tx,
            done_rx,
        }
    }

    fn waiting(&self) -> bool {
        !self.flushes.is_empty() || !self.nows.is_empty() || self.stop.is_some()
    }

    /// Runs until stopped (or every `Alerter` is dropped with nothing pending).
    pub(super) async fn run(
        mut self,
        rx: std::sync::mpsc::Receiver<Cmd>,
        wake_up: Arc<tokio::sync::Notify>,
        parked: Arc<AtomicBool>,
    ) {
        let mut wake = Instant::now();
        let mut active = Instant::now();
        let mut closed = false;
        let mut last_batch = 0;
        loop {
            let mut batch = Vec::new();
            let mut recorded = false;
            drain(&rx, &mut batch, &mut closed);
            if batch.is_empty() {
                if closed && self.stop.is_none() {
                    return;
                }
                // Quiet for a while: park, and have the next sender wake us. Set the flag before looking at
                // the queue once more, so an alert pushed in between is seen now or wakes us.
                let park = active.elapsed() > PARK_AFTER;
                if park {
                    parked.store(true, Ordering::Release);
                    drain(&rx, &mut batch, &mut closed);
                }
                if batch.is_empty() {
                    let poll = if last_batch >= BURST {
                        POLL_BURST
                    } else {
                        POLL
                    };
                    let until = if park {
                        wake
                    } else {
                        wake.min(Instant::now() + poll)
                    };
                    tokio::select! {
                        _ = wake_up.notified() => {}
                        Some(outcome) = self.done_rx.recv() => {
                            self.record(outcome);
                            recorded = true;
                        }
                        _ = tokio::time::sleep_until(until.into()) => {}
                    }
                    parked.store(false, Ordering::Release);
                    drain(&rx, &mut batch, &mut closed);
                }
            }
            if !batch.is_empty() {
                active = Instant::now();
            }
            last_batch = batch.len();
            while let Ok(outcome) = self.done_rx.try_recv() {
                self.record(outcome);
                recorded = true;
            }
            // A poll that found nothing new, with no timer due and nobody waiting: no store queries.
            if batch.is_empty() && !recorded && !self.waiting() && Instant::now() < wake {
                continue;
            }
            match self.turn(batch) {
                Some(next) => wake = next,
                None => return,
            }
        }
    }

    /// One turn over a batch of commands: record, plan, deliver, answer. The next wake-up, or None to stop.
    fn turn(&mut self, batch: Vec<Cmd>) -> Option<Instant> {
        let mut flush_now = false;
        let mut alerts = Batch::new(self.grouping.dedup_window.as_millis() as i64);
        let mut immediate = Vec::new();
        let mut recorded = Vec::new();
        for cmd in batch {
            match cmd {
                Cmd::Alert(a, at) => alerts.add(a, at),
                Cmd::Later(later, at) => match later.key() {
                    Some(key) if alerts.count(&key, at) => later.discard(),
                    _ => {
                        if let Some(a) = finished(later) {
                            alerts.add(a, at);
                        }
                    }
                },
                Cmd::Recorded(reply) => recorded.push(reply),
                Cmd::Flush(deadline, reply) => {
                    flush_now = true;
                    self.flushes.push(Waiter { deadline, reply });
                }
                Cmd::Now(a, deadline, reply) => immediate.push((a, Waiter { deadline, reply })),
                Cmd::Stop(deadline, reply) => {
                    flush_now = true;
                    self.stop = Some(Waiter { deadline, reply });
                }
                Cmd::Coordinate(claims) => self.claims = Some(claims),
            }
        }
        self.record_alerts(alerts);
        for reply in recorded {
            let _ = reply.try_send(());
        }
        let now = millis(SystemTime::now());
        for (a, waiter) in immediate {
            self.create_now(a, waiter, now);
        }
        let next_plan = self.plan(now, flush_now);
        self.start_due(now);
        if self.answer_waiters() {
            return None;
        }
        let next_retry = self.store.blocking(|c| store::next_due(c)).ok().flatten();
        let mut next = Instant::now() + Duration::from_secs(60);
        for ms in [next_plan, next_retry].into_iter().flatten() {
            let delay = Duration::from_millis((ms - millis(SystemTime::now())).max(0) as u64);
            next = next.min(Instant::now() + delay.max(Duration::from_millis(20)));
        }
        if self.waiting() {
            next = next.min(Instant::now() + Duration::from_millis(50));
        }
        Some(next)
    }

    /// Writes alerts to the outbox; when the batch is refused, each alert on its own so one bad row cannot sink
    /// the others.
    fn record_alerts(&self, alerts: Batch) {
        self.alerts.add(alerts.alerts());
        let alerts = alerts.into_occurrences();
        if alerts.is_empty() {
            return;
        }
        let window = self.grouping.dedup_window.as_millis() as i64;
        if let Err(error) = self.store.blocking(|c| store::record(c, &alerts, window)) {
            tracing::warn!(alert = false, %error, "Cannot write alerts to the outbox; trying one by one");
            for o in alerts {
                let subject = o.alert.subject.clone();
                if let Err(error) = self.store.blocking(|c| store::record(c, &[o], window)) {
                    tracing::error!(alert = false, %error, %subject, "An alert could not be written to the outbox");
                }
            }
        }
    }

    /// A `notify_now` alert becomes a message of its own at once.
    fn create_now(&mut self, a: Alert, waiter: Waiter<NotifyReport>, now: i64) {
        // Sent at once on request (`tend notify`): its own claim, never mistaken for another's.
        let planned = plan::Planned {
            severity: a.severity,
            keys: vec![a.key()],
            claim: format!("{}#{now}{}", a.key(), fastrand::u64(..)),
            subject: a.subject,
            body: a.body,
            rows: vec![],
        };
        let names = self.names();
        match self
            .store
            .blocking(|c| store::create_messages(c, &[planned], &names, now))
        {
            Ok(ids) => self.nows.push((ids[0], waiter)),
            Err(error) => {
                let _ = waiter.reply.send(vec![(
                    "outbox".into(),
                    DeliveryReport::Failed(error.to_string()),
                )]);
            }
        }
    }

    /// Answers the waiters whose condition is met or whose time is up; true when a stop is answered.
    fn answer_waiters(&mut self) -> bool {
        let undelivered = self.store.blocking(|c| store::undelivered(c)).unwrap_or(-1);
        let at = Instant::now();
        let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| undelivered == 0 || at >= w.deadline);
        self.flushes = keep;
        for w in ready {
            let _ = w.reply.send(FlushReport { undelivered });
        }
        for (id, w) in std::mem::take(&mut self.nows) {
            let states = self
                .store
                .blocking(|c| store::deliveries_of(c, id))
                .unwrap_or_default();
            let settled = states
                .iter()
                .all(|(_, ok, attempts, _)| *ok || *attempts > 0);
            if settled || at >= w.deadline {
                let _ = w.reply.send(states.into_iter().map(report).collect());
            } else {
                self.nows.push((id, w));
            }
        }
        if let Some(w) = self.stop.take() {
            if undelivered == 0
                || at >= w.deadline
                || self.inflight.is_empty() && !self.any_due_now()
            {
                let _ = w.reply.send(());
                return true;
            }
            self.stop = Some(w);
        }
        false
    }

    fn names(&self) -> Vec<String> {
        self.notifiers.iter().map(|(n, _)| n.clone()).collect()
    }

    fn plan(&self, now: i64, flush: bool) -> Option<i64> {
        let result = self.store.blocking(|c| {
            let rows = store::pending(c)?;
            let recent = store::sent_since(c, now - 60_000)?;
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
            let names = self.names();
            if let Err(error) = self
                .store
                .blocking(|c| store::create_messages(c, &planned, &names, now))
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
            .blocking(|c| store::due(c, now, 1))
            .map(|d| !d.is_empty())
            .unwrap_or(false)
    }
}

/// Runs an alert's `finish` on this thread; a panic inside it (a backtrace that cannot be symbolised) costs
/// that alert, logged, and not the alert thread.
fn finished(later: Box<dyn Later>) -> Option<Alert> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| later.finish())) {
        Ok(alert) => Some(alert),
        Err(_) => {
            tracing::error!(
                alert = false,
                "An alert could not be finished (it panicked); it is lost"
            );
            None
        }
    }
}

/// Moves every queued command into `batch`; notes when every sender is gone.
fn drain(rx: &std::sync::mpsc::Receiver<Cmd>, batch: &mut Vec<Cmd>, closed: &mut bool) {
    loop {
        match rx.try_recv() {
            Ok(cmd) => batch.push(cmd),
            Err(std::sync::mpsc::TryRecvError::Empty) => break,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                *closed = true;
                break;
            }
        }
    }
}

/// One delivery's stored state as `notify_now` reports it.
fn report((notifier, ok, attempts, error): store::DeliveryState) -> (String, DeliveryReport) {
    let r = if ok {
        DeliveryReport::Accepted
    } else if attempts == 0 {
        DeliveryReport::NoAnswer
    } else {
        DeliveryReport::Failed(error.unwrap_or_default())
    };
    (notifier, r)
}
