//! The scheduler: every target on its own interval, concurrently, with bounded concurrency.
//!
//! One small task per target sleeps until its next slot (start + a stable per-target jitter + k ×
//! interval), takes a permit of the shared semaphore, checks, feeds its [`TrackerState`] and reports. A slow
//! target only delays itself: when its check outlives its interval the missed slots are skipped and counted.
//! Lag (how late a check starts after its slot, semaphore wait included) goes into a [`LagHistogram`].
//! Tracker events also go to one storm task that gathers them for `storm.window` and decides, with
//! [`storm::decide`], how to alert. The daemon consumes [`Message`]s: it persists, alerts and serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::Invalid;
use crate::monitor::check::{Checker, Outcome, Probe};
use crate::monitor::config::{MonitorConfig, StormConfig};
use crate::monitor::lag::LagHistogram;
use crate::monitor::spread::{self, Ownership, Spread};
use crate::monitor::storm::{self, Alert, StormState};
use crate::monitor::tracker::{Event, Thresholds, TrackerState};

/// One finished check.
#[derive(Debug, Clone)]
pub struct Report {
    /// Index of the target in `monitor.target`.
    pub index: usize,
    /// What the check saw.
    pub outcome: Outcome,
    /// The tracker's event, if this check changed something (informative: alert on [`Message::Alert`]).
    pub event: Option<Event>,
    /// The tracker state after this check: persist it so a restart resumes it.
    pub state: TrackerState,
    /// How late the check started after its slot.
    pub lag: Duration,
    /// With `[cluster]`: the replicas that saw the current state, when this check changed it (else empty).
    pub seen_from: Vec<String>,
}

/// What the scheduler tells the daemon.
#[derive(Debug, Clone)]
pub enum Message {
    /// A check finished: record history and metrics, persist `state`. Never alert from this.
    Checked(Box<Report>),
    /// Send this alert (storm control already decided single vs grouped).
    Alert(Alert),
}

/// Runs the monitors until shutdown. Build with [`Scheduler::new`], then `run`.
pub struct Scheduler {
    probes: Vec<Arc<Probe>>,
    states: Vec<TrackerState>,
    checker: Checker,
    thresholds: Thresholds,
    concurrency: usize,
    storm: StormConfig,
    sink: mpsc::Sender<Message>,
    lag: Arc<LagHistogram>,
    spread: Option<Arc<Spread>>,
}

struct Shared {
    checker: Checker,
    thresholds: Thresholds,
    semaphore: Semaphore,
    lag: Arc<LagHistogram>,
    failing: Arc<AtomicUsize>,
    owned: Arc<AtomicUsize>,
    spread: Option<Arc<Spread>>,
    sink: mpsc::Sender<Message>,
    events: mpsc::UnboundedSender<(usize, Event)>,
    epoch: Instant,
}

impl Scheduler {
    /// A scheduler for every target of `config`. `states` are the persisted tracker states by target index
    /// (missing ones start Unknown); messages go to `sink` (a bounded channel the daemon drains).
    pub fn new(
        config: &MonitorConfig,
        checker: Checker,
        mut states: Vec<TrackerState>,
        sink: mpsc::Sender<Message>,
    ) -> Result<Scheduler, Invalid> {
        let probes = Probe::all(config)?
            .into_iter()
            .map(Arc::new)
            .collect::<Vec<_>>();
        states.resize_with(probes.len(), TrackerState::default);
        Ok(Scheduler {
            probes,
            states,
            checker,
            thresholds: Thresholds::from_config(config),
            concurrency: config.concurrency.max(1),
            storm: config.storm.clone(),
            sink,
            lag: Arc::new(LagHistogram::default()),
            spread: None,
        })
    }

    /// With `[cluster]`: check only the targets this replica owns, confirm changes with other replicas, share
    /// the states and answer the others' requests.
    pub fn with_spread(mut self, spread: Spread) -> Scheduler {
        self.spread = Some(Arc::new(spread));
        self
    }

    /// The lag histogram, to read while running (/metrics, logs).
    pub fn lag(&self) -> Arc<LagHistogram> {
        self.lag.clone()
    }

    /// Checks every target on its interval until `shutdown`; returns once every task has stopped.
    pub async fn run(self, shutdown: CancellationToken) {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let total = self.probes.len();
        let shared = Arc::new(Shared {
            checker: self.checker,
            thresholds: self.thresholds,
            semaphore: Semaphore::new(self.concurrency),
            lag: self.lag,
            failing: Arc::new(AtomicUsize::new(
                self.states.iter().filter(|s| s.is_failing()).count(),
            )),
            owned: Arc::new(AtomicUsize::new(total)),
            spread: self.spread.clone(),
            sink: self.sink,
            events: events_tx,
            epoch: Instant::now(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(spread) = &self.spread {
            let probes = self
                .probes
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect();
            tasks.spawn(spread::answer_requests(
                spread.clone(),
                probes,
                shared.checker.clone(),
                shutdown.clone(),
            ));
        }
        for (index, (probe, state)) in self.probes.into_iter().zip(self.states).enumerate() {
            tasks.spawn(target_loop(
                index,
                probe,
                state,
                shared.clone(),
                shutdown.clone(),
            ));
        }
        let storm_task = tokio::spawn(storm_loop(
            events_rx,
            (shared.failing.clone(), shared.owned.clone()),
            shared.sink.clone(),
            self.storm,
            shutdown.clone(),
        ));
        drop(shared); // the storm task ends when the last target task drops its event sender
        while let Some(result) = tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(error = %error, "Monitor target task failed");
            }
        }
        if let Err(error) = storm_task.await {
            tracing::error!(error = %error, "Monitor storm task failed");
        }
    }
}

/// A stable offset in `[0, interval)` from the target's name (FNV-1a), so slots spread evenly and stay
/// the same across restarts.
pub fn jitter(name: &str, interval: Duration) -> Duration {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos(u64::try_from(u128::from(hash) % nanos).unwrap_or(0))
}

/// The first slot strictly after `now`, given the previous slot, and how many slots were skipped.
pub fn next_slot(previous: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = previous + interval;
    if next > now {
        return (next, 0);
    }
    let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
    let skipped = u64::try_from(behind).unwrap_or(u64::MAX).saturating_add(1);
    (
        next + interval * u32::try_from(skipped).unwrap_or(u32::MAX),
        skipped,
    )
}

async fn target_loop(
    index: usize,
    probe: Arc<Probe>,
    mut state: TrackerState,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut slot = shared.epoch + jitter(&probe.name, probe.interval);
    let mut ownership = Ownership::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(slot) => {}
        }
        if let Some(spread) = &shared.spread {
            let mine = ownership.turn(
                spread,
                &probe.name,
                &mut state,
                &shared.failing,
                &shared.owned,
            );
            if !mine {
                slot = next_slot(slot, probe.interval, Instant::now()).0; // another replica checks it
                continue;
            }
        }
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = shared.semaphore.acquire() => permit,
        };
        let Ok(_permit) = permit else { return }; // the semaphore is never closed
        let lag = Instant::now().saturating_duration_since(slot);
        shared.lag.record(lag);
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = shared.checker.check(&probe) => outcome,
        };
        drop(_permit);
        let was_failing = state.is_failing();
        let before = state.clone();
        let mut event = state.observe(
            &shared.thresholds,
            outcome.up,
            &outcome.reason,
            outcome.checked_at,
        );
        let mut seen_from = Vec::new();
        if let Some(spread) = &shared.spread {
            let confirmed = spread
                .confirm(&probe, &outcome, before, &mut state, event)
                .await;
            (event, seen_from) = (confirmed.event, confirmed.seen_from);
            ownership
                .publish(spread, &probe.name, &state, &outcome, &seen_from)
                .await;
        }
        match (was_failing, state.is_failing()) {
            (false, true) => _ = shared.failing.fetch_add(1, Ordering::Relaxed),
            (true, false) => _ = shared.failing.fetch_sub(1, Ordering::Relaxed),
            _ => {}
        }
        if let Some(event) = &event {
            tracing::info!(target_name = %probe.name, event = %event.name(), reason = %outcome.reason, "Monitor state changed");
            let _ = shared.events.send((index, event.clone()));
        }
        let report = Report {
            index,
            outcome,
            event,
            state: state.clone(),
            lag,
            seen_from,
        };
        if shared
            .sink
            .send(Message::Checked(Box::new(report)))
            .await
            .is_err()
        {
            return; // the daemon stopped listening: nothing left to do
        }
        let (next, skipped) = next_slot(slot, probe.interval, Instant::now());
        if skipped > 0 {
            shared.lag.record_skipped(skipped);
        }
        slot = next;
    }
}

async fn storm_loop(
    mut events: mpsc::UnboundedReceiver<(usize, Event)>,
    (failing, owned): (Arc<AtomicUsize>, Arc<AtomicUsize>),
    sink: mpsc::Sender<Message>,
    settings: StormConfig,
    shutdown: CancellationToken,
) {
    let mut state = StormState::default();
    let mut pending = Vec::new();
    let mut tick = tokio::time::interval_at(Instant::now() + settings.window, settings.window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            event = events.recv() => match event {
                Some(e) => { pending.push(e); continue; }
                None => true,
            },
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        if !pending.is_empty() {
            let has_down = pending
                .iter()
                .any(|(_, e)| matches!(e, Event::MonitorDown { .. }));
            let probe_ok = if has_down && !settings.probe_hosts.is_empty() && !closed {
                Some(
                    connectivity_probe(
                        &settings.probe_hosts,
                        settings.window.min(Duration::from_secs(5)),
                    )
                    .await,
                )
            } else {
                None
            };
            let alerts = storm::decide(
                &pending,
                failing.load(Ordering::Relaxed),
                owned.load(Ordering::Relaxed).max(1),
                probe_ok,
                &mut state,
                &settings,
            );
            pending.clear();
            for alert in alerts {
                if sink.send(Message::Alert(alert)).await.is_err() {
                    return;
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// True when any of the reliable `host:port` addresses accepts a TCP connection within `timeout`.
pub async fn connectivity_probe(hosts: &[String], timeout: Duration) -> bool {
    let mut set = tokio::task::JoinSet::new();
    for host in hosts {
        let host = host.clone();
        set.spawn(async move {
            matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(host.as_str())).await,
                Ok(Ok(_))
            )
        });
    }
    while let Some(result) = set.join_next().await {
        if matches!(result, Ok(true)) {
            return true;
        }
    }
    false
}

/// Checks every probe once, concurrently (at most `concurrency` at a time): for `tend monitor --once`.
pub async fn check_all_once(
    checker: &Checker,
    probes: &[Probe],
    concurrency: usize,
) -> Vec<Outcome> {
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (index, probe) in probes.iter().cloned().enumerate() {
        let (checker, semaphore) = (checker.clone(), semaphore.clone());
        set.spawn(async move {
            let _permit = semaphore.acquire().await;
            (index, checker.check(&probe).await)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; probes.len()];
    while let Some(result) = set.join_next().await {
        match result {
            Ok((index, outcome)) => outcomes[index] = Some(outcome),
            Err(error) => tracing::error!(error = %error, "Monitor check task failed"),
        }
    }
    outcomes
        .into_iter()
        .zip(probes)
        .map(|(o, p)| {
            o.unwrap_or_else(|| Outcome {
                up: false,
                reason: format!("check of {} crashed", p.name),
                response_time: Duration::ZERO,
                status: None,
                cert_expiry_days: None,
                checked_at: std::time::SystemTime::now(),
                phases: Default::default(),
                failed_phase: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_stable_and_spread() {
        let i = Duration::from_secs(60);
        assert_eq!(jitter("shop", i), jitter("shop", i));
        assert!(jitter("shop", i) < i);
        let mut buckets = [0u32; 10];
        for n in 0..10_000 {
            buckets[(jitter(&format!("target-{n}"), i).as_secs() / 6) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|b| (800..1200).contains(b)),
            "uneven spread {buckets:?}"
        );
    }

    #[test]
    fn slots_skip_when_a_check_overran() {
        let t0 = Instant::now();
        let s = Duration::from_secs(10);
        assert_eq!(next_slot(t0, s, t0 + Duration::from_secs(3)), (t0 + s, 0));
        assert_eq!(
            next_slot(t0, s, t0 + Duration::from_secs(10)),
            (t0 + 2 * s, 1)
        );
        assert_eq!(
            next_slot(t0, s, t0 + Duration::from_secs(25)),
            (t0 + 3 * s, 2)
        );
    }
}
