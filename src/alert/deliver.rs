//! Delivery, the alert thread's second half: start every due delivery (after the claim's gate, in a cluster)
//! as a task of its own, and record what became of each: delivered, failed (retried with backoff), delivered
//! by another replica, or put off while another replica holds the claim.

use std::time::SystemTime;

use super::claims::Gate;
use super::outcome::{Attempt, Outcome};
use super::service::Worker;
use super::{plan, store};
use crate::core::time::millis;

impl Worker {
    pub(super) fn start_due(&mut self, now: i64) {
        let due = match self.store.blocking(|c| store::due(c, now, 256)) {
            Ok(d) => d,
            Err(error) => {
                tracing::warn!(alert = false, %error, "Cannot read due deliveries");
                return;
            }
        };
        for d in due {
            let key = (d.message.id, d.notifier.clone());
            if self.inflight.contains(&key) {
                continue;
            }
            // In a cluster, one delivery at a time per notifier: a replica that dies between a server taking a
            // mail and the claim being marked done leaves at most that one mail to be sent again.
            if self.claims.is_some() && self.inflight.iter().any(|(_, n)| *n == d.notifier) {
                continue;
            }
            let Some((_, notifier)) = self.notifiers.iter().find(|(n, _)| *n == d.notifier) else {
                // The notifier was removed from the config: record that instead of retrying forever.
                let _ = self.store.blocking(|c| {
                    store::failed(
                        c,
                        d.message.id,
                        &d.notifier,
                        i64::MAX,
                        "notifier no longer configured",
                    )
                });
                continue;
            };
            self.inflight.insert(key);
            let (notifier, done) = (notifier.clone(), self.done_tx.clone());
            let claims = self.claims.clone().filter(|_| !d.claim.is_empty());
            tokio::spawn(async move {
                let gate = match &claims {
                    Some(c) => c.gate(&d.claim).await,
                    None => Gate::Deliver,
                };
                let result = match gate {
                    Gate::Deliver | Gate::Uncoordinated => {
                        match notifier.deliver(&d.message).await {
                            Ok(()) => Attempt::Delivered {
                                coordinated: claims.is_some() && gate == Gate::Deliver,
                            },
                            Err(e) => Attempt::Failed(e),
                        }
                    }
                    Gate::ByPeer(by) => Attempt::ByPeer(by),
                    Gate::Wait(after) => Attempt::Deferred(after),
                };
                let _ = done.send(Outcome {
                    message: d.message.id,
                    notifier: d.notifier,
                    attempts: d.attempts + 1,
                    claim: d.claim,
                    result,
                });
            });
        }
    }

    pub(super) fn record(&mut self, o: Outcome) {
        self.inflight.remove(&(o.message, o.notifier.clone()));
        let now = millis(SystemTime::now());
        let stored = match o.result {
            Attempt::Delivered { coordinated } => {
                self.delivered.inc();
                if !coordinated && self.claims.is_some() {
                    tracing::warn!(alert = false, notifier = %o.notifier, message = o.message,
                        "Alert sent without cluster coordination (etcd unreachable): another replica may send it too");
                }
                let stored = self
                    .store
                    .blocking(|c| store::delivered(c, o.message, &o.notifier, now));
                if coordinated {
                    self.mark_claim_done(o.message, o.claim);
                }
                stored
            }
            Attempt::ByPeer(by) => {
                tracing::info!(alert = false, notifier = %o.notifier, message = o.message, by = %by,
                    "Alert already delivered by another replica");
                self.store
                    .blocking(|c| store::delivered_by_peer(c, o.message, &o.notifier, now, &by))
            }
            Attempt::Deferred(after) => {
                let next = now + after.as_millis() as i64;
                self.store
                    .blocking(|c| store::defer(c, o.message, &o.notifier, next))
            }
            Attempt::Failed(error) => {
                self.failed.inc();
                let reason = crate::core::chain(&error);
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
                    retry_in = %crate::core::duration::seconds(delay),
                    "Alert delivery failed; will retry"
                );
                self.store
                    .blocking(|c| store::failed(c, o.message, &o.notifier, next, &reason))
            }
        };
        if let Err(error) = stored {
            tracing::warn!(alert = false, %error, "Cannot record a delivery result");
        }
    }

    /// Once every notifier took the message, its claim becomes "done" for the dedup window, so no replica
    /// sends it again.
    fn mark_claim_done(&self, message: i64, claim: String) {
        let Some(claims) = self.claims.clone() else {
            return;
        };
        let left = self
            .store
            .blocking(|c| store::undelivered_of(c, message))
            .unwrap_or(1);
        if left == 0 {
            let keep_for = self.grouping.dedup_window;
            tokio::spawn(async move { claims.delivered(&claim, keep_for).await });
        }
    }
}
