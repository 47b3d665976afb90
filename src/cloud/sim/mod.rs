//! The `sim` provider: [`SimFleet`] behind the async [`Provider`] trait, on tokio's clock.
//!
//! Demand (in servers' worth of work) is a function of the seconds since the provider started: steps from the
//! config, a trace file, or any closure ([`SimProvider::new`]). Each serving instance carries demand/ready
//! (capped at 100 %); an instance is `pending` with no data until it has booted. Time is tokio's, so a test
//! with `tokio::time::pause()` runs hours of scaling in milliseconds, deterministically.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::cloud::provider::{CloudError, CloudFuture, Instance, Provider, Series, State};
use crate::core::Invalid;
pub mod fleet;
pub mod trace;

use fleet::SimFleet;

/// `[cloud.sim]`: a simulated fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// How long a new instance takes before it serves [default: 2m].
    #[serde(default = "default_boot", with = "crate::core::duration")]
    pub boot: Duration,
    /// Demand steps: from `at` (time since start) on, the work is `servers` servers' worth.
    #[serde(default)]
    pub demand: Vec<DemandStep>,
    /// Or a CSV trace (one value per `step`, in servers' worth of work); see `tend simulate`.
    pub trace: Option<PathBuf>,
    /// The trace's column [default: the first].
    pub column: Option<String>,
    /// Time between two rows of the trace [default: 60s].
    #[serde(default = "default_step", with = "crate::core::duration")]
    pub step: Duration,
}

/// One step of simulated demand.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandStep {
    /// From this time since start.
    #[serde(with = "crate::core::duration")]
    pub at: Duration,
    /// Servers' worth of work (1.0 = one server at 100 %).
    pub servers: f64,
}

fn default_boot() -> Duration {
    Duration::from_secs(120)
}
fn default_step() -> Duration {
    Duration::from_secs(60)
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            boot: default_boot(),
            demand: vec![DemandStep {
                at: Duration::ZERO,
                servers: 1.0,
            }],
            trace: None,
            column: None,
            step: default_step(),
        }
    }
}

impl SimConfig {
    /// Pure checks.
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        for (i, s) in self.demand.iter().enumerate() {
            if !(s.servers.is_finite() && s.servers >= 0.0) {
                out.push(Invalid::new(
                    format!("{path}.demand[{i}].servers"),
                    "must be a number ≥ 0",
                ));
            }
        }
        if self.trace.is_some() && !self.demand.is_empty() {
            out.push(Invalid::new(
                format!("{path}.trace"),
                "set either trace or demand, not both",
            ));
        }
        if self.step.is_zero() {
            out.push(Invalid::new(
                format!("{path}.step"),
                "must be longer than 0s",
            ));
        }
        out
    }
}

/// Demand in servers as a function of seconds since start.
pub type DemandFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

struct Inner {
    fleet: SimFleet,
    names: HashMap<String, String>,
    tokens: HashMap<String, String>,
    /// Terminated instances with the time they ended (s), for the history.
    ended: Vec<(fleet::SimInstance, f64)>,
}

/// The resolution of the sim provider's history (s).
const HISTORY_STEP: f64 = 60.0;

/// A simulated fleet on tokio time.
#[derive(Clone)]
pub struct SimProvider {
    inner: Arc<Mutex<Inner>>,
    demand: DemandFn,
    start: tokio::time::Instant,
    epoch: SystemTime,
}

impl std::fmt::Debug for SimProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimProvider").finish_non_exhaustive()
    }
}

impl SimProvider {
    /// A fleet whose instances boot in `boot`, under `demand(seconds since now)`.
    pub fn new(boot: Duration, demand: DemandFn) -> SimProvider {
        SimProvider {
            inner: Arc::new(Mutex::new(Inner {
                fleet: SimFleet::new(boot),
                names: HashMap::new(),
                tokens: HashMap::new(),
                ended: Vec::new(),
            })),
            demand,
            start: tokio::time::Instant::now(),
            epoch: SystemTime::now(),
        }
    }

    /// From `[cloud.sim]` (reads the trace file, if any).
    pub fn from_config(config: &SimConfig) -> Result<SimProvider, CloudError> {
        let demand: DemandFn = match &config.trace {
            Some(path) => {
                let values = trace::load_trace(path, config.column.as_deref())
                    .map_err(|e| CloudError::permanent("sim:trace", e.to_string()))?;
                let step = config.step.as_secs_f64();
                Arc::new(move |t: f64| {
                    let i = ((t / step).max(0.0) as usize).min(values.len().saturating_sub(1));
                    values.get(i).copied().unwrap_or(0.0)
                })
            }
            None => {
                let mut steps = config.demand.clone();
                steps.sort_by_key(|s| s.at);
                Arc::new(move |t: f64| {
                    steps
                        .iter()
                        .take_while(|s| s.at.as_secs_f64() <= t)
                        .last()
                        .map_or(0.0, |s| s.servers)
                })
            }
        };
        Ok(SimProvider::new(config.boot, demand))
    }

    /// Seconds since the provider started, on tokio's clock.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The wall-clock time of simulated second `t`.
    pub fn time_of(&self, t: f64) -> SystemTime {
        if t >= 0.0 {
            self.epoch + Duration::from_secs_f64(t)
        } else {
            self.epoch - Duration::from_secs_f64(-t)
        }
    }

    /// How many instances serve now.
    pub fn ready(&self) -> usize {
        self.lock().fleet.ready(self.elapsed())
    }

    /// Instances alive now (booting or serving).
    pub fn live(&self) -> usize {
        self.lock().fleet.live().len()
    }

    /// The demand now (servers).
    pub fn demand_now(&self) -> f64 {
        (self.demand)(self.elapsed())
    }

    /// Instances created and terminated so far.
    pub fn counts(&self) -> (u64, u64) {
        self.lock().fleet.counts()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update of Inner is a single call into SimFleet or a map insert: never left half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn instance(&self, inner: &Inner, i: &fleet::SimInstance, now: f64) -> Instance {
        Instance {
            id: i.id.clone(),
            name: inner.names.get(&i.id).cloned().unwrap_or_default(),
            state: if i.ready_at <= now + 1e-9 {
                State::Running
            } else {
                State::Pending
            },
            launched_at: self.time_of(i.created),
            private_address: Some("127.0.0.1".into()),
            public_address: None,
            port: None,
        }
    }
}

impl Provider for SimProvider {
    fn list<'a>(&'a self, prefix: &'a str) -> CloudFuture<'a, Vec<Instance>> {
        Box::pin(async move {
            let now = self.elapsed();
            let inner = self.lock();
            Ok(inner
                .fleet
                .live()
                .iter()
                .map(|i| self.instance(&inner, i, now))
                .filter(|i| i.name.starts_with(prefix))
                .collect())
        })
    }

    fn create<'a>(&'a self, name: &'a str, client_token: &'a str) -> CloudFuture<'a, Instance> {
        Box::pin(async move {
            let now = self.elapsed();
            let mut inner = self.lock();
            let id = match inner.tokens.get(client_token) {
                Some(id) => id.clone(),
                None => {
                    let id = inner.fleet.create(now);
                    inner.names.insert(id.clone(), name.to_string());
                    inner.tokens.insert(client_token.to_string(), id.clone());
                    id
                }
            };
            let inst = inner
                .fleet
                .live()
                .iter()
                .find(|i| i.id == id)
                .cloned()
                .ok_or_else(|| {
                    CloudError::permanent("sim:create", format!("{id} was already terminated"))
                })?;
            Ok(self.instance(&inner, &inst, now))
        })
    }

    fn terminate<'a>(&'a self, id: &'a str) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            let now = self.elapsed();
            let mut inner = self.lock();
            if let Some(i) = inner.fleet.live().iter().find(|i| i.id == id).cloned() {
                inner.fleet.terminate(id, now);
                inner.ended.push((i, now));
            }
            Ok(())
        })
    }

    fn load<'a>(
        &'a self,
        ids: &'a [String],
        window: Duration,
    ) -> CloudFuture<'a, Vec<Option<f64>>> {
        Box::pin(async move {
            let now = self.elapsed();
            let inner = self.lock();
            // Average of one-second samples over the window, counting only the seconds the instance served.
            let samples = window.as_secs().max(1);
            Ok(ids
                .iter()
                .map(|id| {
                    let (mut sum, mut n) = (0.0, 0u64);
                    for k in 0..samples {
                        let t = now - k as f64;
                        if let Some(cpu) = inner.fleet.instance_cpu(id, (self.demand)(t), t) {
                            sum += cpu;
                            n += 1;
                        }
                    }
                    (n > 0).then(|| sum / n as f64)
                })
                .collect())
        })
    }

    fn history<'a>(
        &'a self,
        ids: &'a [String],
        since: SystemTime,
        until: SystemTime,
    ) -> CloudFuture<'a, Vec<Series>> {
        Box::pin(async move {
            let now = self.elapsed();
            let inner = self.lock();
            // Every instance ever created, with the time it stopped serving.
            let all: Vec<(&fleet::SimInstance, f64)> = inner
                .fleet
                .live()
                .iter()
                .map(|i| (i, f64::INFINITY))
                .chain(inner.ended.iter().map(|(i, end)| (i, *end)))
                .collect();
            let secs = |t: SystemTime| match t.duration_since(self.epoch) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            let (from, to) = (secs(since).max(0.0), secs(until).min(now));
            let serving = |i: &fleet::SimInstance, end: f64, t: f64| i.ready_at <= t && t < end;
            let mut out = Vec::new();
            for id in ids {
                let Some(&(inst, end)) = all.iter().find(|(i, _)| &i.id == id) else {
                    continue;
                };
                let mut points = Vec::new();
                let mut t = (from / HISTORY_STEP).ceil() * HISTORY_STEP;
                while t < to {
                    if serving(inst, end, t) {
                        let ready = all.iter().filter(|(i, e)| serving(i, *e, t)).count();
                        let cpu = ((self.demand)(t) / ready as f64 * 100.0).min(100.0);
                        points.push((self.time_of(t), cpu));
                    }
                    t += HISTORY_STEP;
                }
                if !points.is_empty() {
                    out.push(Series {
                        id: id.clone(),
                        points,
                    });
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn boots_then_reports_the_demand_share() {
        let p = SimProvider::new(Duration::from_secs(60), Arc::new(|_| 1.5));
        let a = p.create("t-a", "tok-a").await.unwrap();
        let again = p.create("t-a", "tok-a").await.unwrap();
        assert_eq!(a.id, again.id, "same token, same instance");
        p.create("t-b", "tok-b").await.unwrap();
        p.create("other-c", "tok-c").await.unwrap();
        let listed = p.list("t-").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|i| i.state == State::Pending));
        let ids: Vec<String> = listed.iter().map(|i| i.id.clone()).collect();
        assert_eq!(
            p.load(&ids, Duration::from_secs(30)).await.unwrap(),
            [None, None]
        );
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(
            p.list("t-")
                .await
                .unwrap()
                .iter()
                .all(|i| i.state == State::Running)
        );
        // Three serve 1.5 servers of work: 50 % each.
        assert_eq!(
            p.load(&ids, Duration::from_secs(30)).await.unwrap(),
            [Some(50.0), Some(50.0)]
        );
        p.terminate(&ids[0]).await.unwrap();
        assert_eq!(p.list("t-").await.unwrap().len(), 1);
        // The history remembers the terminated one: a point a minute while it served (booted at 60 s).
        tokio::time::advance(Duration::from_secs(60)).await;
        let h = p
            .history(&ids, p.time_of(0.0), p.time_of(p.elapsed()))
            .await
            .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].points, [(p.time_of(60.0), 50.0)]);
        assert_eq!(
            h[1].points,
            [(p.time_of(60.0), 50.0), (p.time_of(120.0), 75.0)],
            "after the termination two serve 1.5"
        );
    }

    #[test]
    fn demand_steps_from_config() {
        let c: SimConfig = toml::from_str(
            "boot = \"1m\"\n[[demand]]\nat = \"0s\"\nservers = 1\n[[demand]]\nat = \"10m\"\nservers = 3\n",
        )
        .unwrap();
        assert!(c.validate("cloud.sim").is_empty());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let p = SimProvider::from_config(&c).unwrap();
        assert_eq!((p.demand)(599.0), 1.0);
        assert_eq!((p.demand)(600.0), 3.0);
    }
}
