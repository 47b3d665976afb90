//! A deterministic in-memory fleet with a boot delay: the simulator's world, and the core of the `sim` cloud
//! provider (wrap it in a mutex and drive it with a demand function or a trace).
//!
//! Time is seconds since the start of the simulation (`f64`, may be negative for instances started before it).
//! An instance is billed from creation and serves from `created + boot`; the demand splits evenly over the
//! instances that serve.

use std::time::Duration;

/// One simulated instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SimInstance {
    /// Id, unique for the fleet's lifetime: `sim-000001`, ...
    pub id: String,
    /// Creation time (s).
    pub created: f64,
    /// When it starts serving (s): `created + boot`.
    pub ready_at: f64,
}

/// A synchronous simulated fleet.
#[derive(Debug, Clone)]
pub struct SimFleet {
    boot: f64,
    live: Vec<SimInstance>,
    next_id: u64,
    billed_done: f64,
    created: u64,
    terminated: u64,
}

/// The minimum billed time per instance (s), as EC2 per-second billing.
pub const MIN_BILLED_SECS: f64 = 60.0;

impl SimFleet {
    /// An empty fleet whose instances serve `boot` after creation.
    pub fn new(boot: Duration) -> Self {
        SimFleet {
            boot: boot.as_secs_f64(),
            live: Vec::new(),
            next_id: 1,
            billed_done: 0.0,
            created: 0,
            terminated: 0,
        }
    }

    /// Creates an instance at `now`; it serves from `now + boot`. Returns its id.
    pub fn create(&mut self, now: f64) -> String {
        let id = format!("sim-{:06}", self.next_id);
        self.next_id += 1;
        self.created += 1;
        self.live.push(SimInstance {
            id: id.clone(),
            created: now,
            ready_at: now + self.boot,
        });
        id
    }

    /// Terminates the instance `id` at `now` (its billing stops); false when there is no such live instance.
    pub fn terminate(&mut self, id: &str, now: f64) -> bool {
        match self.live.iter().position(|i| i.id == id) {
            Some(pos) => {
                self.terminate_at(pos, now);
                true
            }
            None => false,
        }
    }

    /// Terminates the live instance at position `pos` of [`SimFleet::live`].
    pub fn terminate_at(&mut self, pos: usize, now: f64) {
        let inst = self.live.remove(pos);
        self.billed_done += (now - inst.created).max(MIN_BILLED_SECS);
        self.terminated += 1;
    }

    /// Instances not terminated, in creation order.
    pub fn live(&self) -> &[SimInstance] {
        &self.live
    }

    /// How many instances serve at `now`.
    pub fn ready(&self, now: f64) -> usize {
        self.live
            .iter()
            .filter(|i| i.ready_at <= now + 1e-9)
            .count()
    }

    /// Instantaneous CPU (percent) of each serving instance under `demand` (servers); `None` when none serves.
    pub fn cpu(&self, demand: f64, now: f64) -> Option<f64> {
        let ready = self.ready(now);
        (ready > 0).then(|| (demand / ready as f64 * 100.0).min(100.0))
    }

    /// Instantaneous CPU of instance `id` (None while it boots, or when unknown).
    pub fn instance_cpu(&self, id: &str, demand: f64, now: f64) -> Option<f64> {
        let inst = self.live.iter().find(|i| i.id == id)?;
        if inst.ready_at > now + 1e-9 {
            None
        } else {
            self.cpu(demand, now)
        }
    }

    /// Billed seconds up to `end` for every instance ever created (60 s minimum each).
    pub fn billed_seconds(&self, end: f64) -> f64 {
        self.billed_done
            + self
                .live
                .iter()
                .map(|i| (end - i.created).max(MIN_BILLED_SECS))
                .sum::<f64>()
    }

    /// Instances created and terminated so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.created, self.terminated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boots_bills_and_splits_load() {
        let mut f = SimFleet::new(Duration::from_secs(120));
        let a = f.create(0.0);
        let b = f.create(0.0);
        assert_ne!(a, b);
        assert_eq!(f.ready(119.0), 0);
        assert_eq!(f.cpu(1.0, 119.0), None);
        assert_eq!(f.instance_cpu(&a, 1.0, 60.0), None);
        assert_eq!(f.ready(120.0), 2);
        assert_eq!(f.cpu(1.0, 120.0), Some(50.0));
        assert_eq!(f.cpu(5.0, 120.0), Some(100.0));
        assert!(f.terminate(&a, 30.0));
        assert!(!f.terminate(&a, 30.0));
        assert_eq!(f.billed_seconds(600.0), 60.0 + 600.0);
    }
}
