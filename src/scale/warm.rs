//! The orchestrator's warm start: before its first decision (and when this replica becomes the leader) it reads
//! the fleet's recent metric history from the provider and learns from it, so it neither starts blind nor invents
//! a headroom, and says what it learned.
//!
//! Which instances: the ones listed now and every one the scaler observed within the span (its stored decisions
//! keep them; CloudWatch keeps a terminated instance's metrics for weeks after DescribeInstances forgets it).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::names::name_prefix;
use super::past::fleet_demand;
use super::policy::span_text;
use super::service::{Orchestrator, ScaleError};
use super::store;
use crate::core::time::millis;

/// What a warm start read and learned.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmStart {
    /// Instances whose history was asked for.
    pub asked: usize,
    /// Instances that had history.
    pub with_history: usize,
    /// The time the history covered.
    pub span: Duration,
    /// The metric's resolution seen in it.
    pub resolution: Duration,
    /// The basis of the next decisions, in words.
    pub basis: String,
}

impl Orchestrator {
    /// Reads the fleet's metric history since what the memory already holds (at most `history` back), learns
    /// from it, logs what was learned and returns it. A failure is logged and survived: the policy then learns as
    /// it runs (and until it has, it is the configured high/low rule). Call it when this replica becomes the
    /// leader; the first cycle calls it itself.
    pub async fn warm_start(&mut self) -> Option<WarmStart> {
        self.warmed = true;
        let span = self.config.policy.history;
        if span.is_zero() {
            return None;
        }
        match self.read_history(span).await {
            Ok(w) => {
                crate::notice!(fleet = %self.prefix, instances = w.asked, with_history = w.with_history,
                    history = %span_text(w.span), resolution = %crate::core::duration::seconds(w.resolution),
                    basis = %w.basis, "Warm start: {}", w.basis);
                Some(w)
            }
            Err(error) => {
                crate::warning!(fleet = %self.prefix, %error,
                    "Cannot read the fleet's metric history; learning as it runs");
                None
            }
        }
    }

    async fn read_history(&mut self, span: Duration) -> Result<WarmStart, ScaleError> {
        let now = self.now();
        let since = (now - span).max(self.policy.history().newest().unwrap_or(now - span));
        let listed = self
            .call("list", self.provider.list(&name_prefix(&self.prefix)))
            .await?;
        let mut ids: BTreeSet<String> = listed.into_iter().map(|i| i.id).collect();
        ids.extend(store::seen_instances(&self.store, millis(since)).await?);
        let ids: Vec<String> = ids.into_iter().collect();
        let series = self
            .call("history", self.provider.history(&ids, since, now))
            .await?;
        let past = fleet_demand(&series);
        self.policy.learn_past(&past, &self.config.policy);
        let basis = self.basis_now(now);
        Ok(WarmStart {
            asked: ids.len(),
            with_history: series.len(),
            span: past.span(),
            resolution: past.resolution,
            basis,
        })
    }

    /// What the policy's decisions rest on now, at the demand it last learned.
    fn basis_now(&self, now: SystemTime) -> String {
        let level = self.policy.history().last_demand().unwrap_or(0.0);
        self.policy.basis_at(level, &self.config.policy, now).1
    }
}
