//! The monitor service's quiet time: which targets a maintenance window or a silence covers now, the down
//! alerts held back meanwhile (kept in the store, so a restart keeps them), and their release when the cover
//! ends. Silences are re-read from the store before each decision, so `tend silence` on a running daemon
//! counts at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::hold::{self, Held, Verdict};
use super::maintenance::{Cover, Silence, Windows, cover};
use super::store;
use super::storm::{Alert, GroupKind};
use super::tracker::Event;
use crate::store::{Store, StoreError};

/// Windows, silences and held alerts, for the service's loop.
pub struct Quiet {
    windows: Windows,
    silences: Vec<Silence>,
    held: BTreeMap<String, Held>,
    store: Store,
    names: Arc<[String]>,
}

impl Quiet {
    /// Reads the held alerts and silences from the store.
    pub async fn load(
        store: Store,
        names: Arc<[String]>,
        windows: Windows,
    ) -> Result<Quiet, StoreError> {
        Ok(Quiet {
            held: store::held(&store).await?,
            silences: store::silences(&store, SystemTime::now()).await?,
            windows,
            store,
            names,
        })
    }

    /// Re-reads the silences (`tend silence` writes them while the daemon runs).
    pub async fn refresh(&mut self, now: SystemTime) {
        match store::silences(&self.store, now).await {
            Ok(s) => self.silences = s,
            Err(error) => {
                tracing::warn!(%error, "Cannot read the silences; keeping the last ones read")
            }
        }
    }

    /// Why `name` is quiet at `now`, if it is.
    pub fn cover(&self, name: &str, now: SystemTime) -> Option<Cover> {
        cover(name, now, &self.windows, &self.silences)
    }

    /// True when some window, silence or held alert exists (else nothing needs looking at).
    pub fn anything(&self) -> bool {
        !self.windows.is_empty() || !self.silences.is_empty() || !self.held.is_empty()
    }

    /// Whether `name` has a down alert held back.
    pub fn is_held(&self, name: &str) -> bool {
        self.held.contains_key(name)
    }

    /// The windows (for the page).
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// The silences in force or to come (for the page).
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// What is left of `alert` to send once covered targets are taken out (their downs held back).
    pub async fn filter(&mut self, alert: Alert, now: SystemTime) -> Option<Alert> {
        if !self.anything() {
            return Some(alert);
        }
        self.refresh(now).await;
        match alert {
            Alert::Single { index, event } => self
                .decide(index, &event, now)
                .await
                .then_some(Alert::Single { index, event }),
            Alert::Grouped {
                kind,
                targets,
                message,
            } => {
                let event = match kind {
                    GroupKind::Down => Event::MonitorDown {
                        since: now,
                        reason: message.clone(),
                    },
                    GroupKind::StillDown => Event::MonitorStillDown {
                        since: now,
                        down_for: Duration::ZERO,
                        reason: message.clone(),
                    },
                    GroupKind::Up => Event::MonitorUp {
                        downtime: Duration::ZERO,
                        last_failure: String::new(),
                    },
                };
                let mut kept = Vec::with_capacity(targets.len());
                for index in targets {
                    if self.decide(index, &event, now).await {
                        kept.push(index);
                    }
                }
                (!kept.is_empty()).then_some(Alert::Grouped {
                    kind,
                    targets: kept,
                    message,
                })
            }
        }
    }

    /// Applies the verdict on one target's event; true to send it.
    async fn decide(&mut self, index: usize, event: &Event, now: SystemTime) -> bool {
        let Some(name) = self.names.get(index).cloned() else {
            return true;
        };
        let covered = self.cover(&name, now);
        match hold::decide(event, covered.is_some(), self.held.get(&name), now) {
            Verdict::Send => true,
            Verdict::Hold(held) => {
                let why = covered.map(|c| c.why).unwrap_or_default();
                crate::notice!(target_name = %name, event = %event.name(), why = %why,
                    "Alert held back during quiet time");
                if let Err(error) = store::hold(&self.store, name.clone(), held.clone()).await {
                    tracing::warn!(%error, "Cannot store a held alert");
                }
                self.held.insert(name, held);
                false
            }
            Verdict::Drop { release } => {
                tracing::info!(target_name = %name, event = %event.name(), "Alert dropped during quiet time");
                if release {
                    self.forget(name).await;
                }
                false
            }
        }
    }

    async fn forget(&mut self, name: String) {
        self.held.remove(&name);
        if let Err(error) = store::release(&self.store, name).await {
            tracing::warn!(%error, "Cannot forget a held alert");
        }
    }

    /// The held outages whose cover has ended: the down alerts to send now (for targets `is_down` says are
    /// still down); the others are forgotten.
    pub async fn release_due(
        &mut self,
        now: SystemTime,
        is_down: impl Fn(usize) -> bool,
    ) -> Vec<Alert> {
        if self.held.is_empty() {
            return Vec::new();
        }
        self.refresh(now).await;
        let due: Vec<String> = hold::due(&self.held, |name| self.cover(name, now).is_some())
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut alerts = Vec::new();
        for name in due {
            let Some(held) = self.held.get(&name).cloned() else {
                continue;
            };
            self.forget(name.clone()).await;
            let Some(index) = self.names.iter().position(|n| *n == name) else {
                continue;
            };
            if is_down(index) {
                crate::notice!(target_name = %name, "Quiet time over and the outage is still open: alerting");
                alerts.push(Alert::Single {
                    index,
                    event: Event::MonitorDown {
                        since: held.since,
                        reason: held.reason,
                    },
                });
            }
        }
        alerts
    }
}
