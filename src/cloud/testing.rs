//! A fake provider for unit tests: an in-memory fleet with settable loads and injectable failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::provider::{CloudError, CloudFuture, Instance, Provider, Series, State};

/// Which call fails next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `list`.
    List,
    /// `create`.
    Create,
    /// `terminate`.
    Terminate,
    /// `load`.
    Load,
    /// `history`.
    History,
}

/// An in-memory provider.
#[derive(Debug, Default)]
pub struct FakeProvider {
    /// The instances (terminated ones are removed).
    pub instances: Mutex<Vec<Instance>>,
    /// Load per instance id (absent = no data).
    pub loads: Mutex<HashMap<String, f64>>,
    /// Past load per instance id, terminated ones too: what `history` answers (within its span).
    pub past: Mutex<HashMap<String, Vec<(SystemTime, f64)>>>,
    /// The next call of each op fails with this error (once).
    pub fail_next: Mutex<HashMap<Op, CloudError>>,
    /// Calls made, as `create NAME` / `terminate ID`.
    pub calls: Mutex<Vec<String>>,
    /// History reads, as `history ID ID ...` (ids sorted).
    pub history_calls: Mutex<Vec<String>>,
    /// Make every call hang forever.
    pub hang: Mutex<bool>,
    next: Mutex<u32>,
}

impl FakeProvider {
    /// `n` running instances named `{prefix}-seed{i}` at `load`, launched an hour ago.
    pub fn with_running(prefix: &str, n: usize, load: Option<f64>) -> FakeProvider {
        let p = FakeProvider::default();
        for k in 0..n {
            let id = format!("i-seed{k}");
            p.instances.lock().unwrap().push(Instance {
                id: id.clone(),
                name: format!("{prefix}-seed{k}"),
                state: State::Running,
                launched_at: SystemTime::now() - Duration::from_secs(3600 + k as u64),
                private_address: Some(format!("10.0.0.{k}")),
                public_address: None,
                port: None,
            });
            if let Some(l) = load {
                p.loads.lock().unwrap().insert(id, l);
            }
        }
        p
    }

    /// Sets the load of every instance.
    pub fn set_all_loads(&self, load: f64) {
        let ids: Vec<String> = self
            .instances
            .lock()
            .unwrap()
            .iter()
            .map(|i| i.id.clone())
            .collect();
        let mut loads = self.loads.lock().unwrap();
        for id in ids {
            loads.insert(id, load);
        }
    }

    /// Gives instance `id` a past: a point every `every` for `span` before now, at `load(k)` for the k-th point
    /// (oldest first).
    pub fn set_past(&self, id: &str, span: Duration, every: Duration, load: impl Fn(usize) -> f64) {
        let now = SystemTime::now();
        let n = (span.as_secs() / every.as_secs().max(1)) as usize;
        let points = (0..n)
            .map(|k| (now - span + every * k as u32, load(k)))
            .collect();
        self.past.lock().unwrap().insert(id.to_string(), points);
    }

    /// The next `op` call fails with `error`.
    pub fn fail_once(&self, op: Op, error: CloudError) {
        self.fail_next.lock().unwrap().insert(op, error);
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    async fn gate(&self, op: Op) -> Result<(), CloudError> {
        if *self.hang.lock().unwrap() {
            std::future::pending::<()>().await;
        }
        match self.fail_next.lock().unwrap().remove(&op) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Provider for FakeProvider {
    fn list<'a>(&'a self, prefix: &'a str) -> CloudFuture<'a, Vec<Instance>> {
        Box::pin(async move {
            self.gate(Op::List).await?;
            Ok(self
                .instances
                .lock()
                .unwrap()
                .iter()
                .filter(|i| i.name.starts_with(prefix))
                .cloned()
                .collect())
        })
    }

    fn create<'a>(&'a self, name: &'a str, _token: &'a str) -> CloudFuture<'a, Instance> {
        Box::pin(async move {
            self.gate(Op::Create).await?;
            self.calls.lock().unwrap().push(format!("create {name}"));
            let mut next = self.next.lock().unwrap();
            *next += 1;
            let i = Instance {
                id: format!("i-new{next}"),
                name: name.to_string(),
                state: State::Running,
                launched_at: SystemTime::now(),
                private_address: None,
                public_address: None,
                port: None,
            };
            self.instances.lock().unwrap().push(i.clone());
            Ok(i)
        })
    }

    fn terminate<'a>(&'a self, id: &'a str) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.gate(Op::Terminate).await?;
            self.calls.lock().unwrap().push(format!("terminate {id}"));
            self.instances.lock().unwrap().retain(|i| i.id != id);
            Ok(())
        })
    }

    fn load<'a>(
        &'a self,
        ids: &'a [String],
        _window: Duration,
    ) -> CloudFuture<'a, Vec<Option<f64>>> {
        Box::pin(async move {
            self.gate(Op::Load).await?;
            let loads = self.loads.lock().unwrap();
            Ok(ids.iter().map(|id| loads.get(id).copied()).collect())
        })
    }

    fn history<'a>(
        &'a self,
        ids: &'a [String],
        since: SystemTime,
        until: SystemTime,
    ) -> CloudFuture<'a, Vec<Series>> {
        Box::pin(async move {
            self.gate(Op::History).await?;
            let mut asked = ids.to_vec();
            asked.sort();
            self.history_calls
                .lock()
                .unwrap()
                .push(format!("history {}", asked.join(" ")));
            let past = self.past.lock().unwrap();
            Ok(ids
                .iter()
                .filter_map(|id| {
                    let points: Vec<(SystemTime, f64)> = past
                        .get(id)?
                        .iter()
                        .filter(|(at, _)| *at >= since && *at < until)
                        .copied()
                        .collect();
                    (!points.is_empty()).then(|| Series {
                        id: id.clone(),
                        points,
                    })
                })
                .collect())
        })
    }
}
