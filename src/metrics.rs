//! A small Prometheus registry: counters and gauges that parts create once and bump lock-free, rendered in the
//! text exposition format on `GET /metrics`.
//!
//! Each series is an atomic; the registry's lock is taken only to create a series and to render. Values computed
//! at scrape time (uptime, queue lengths read from the store) are registered as callbacks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Counter,
    Gauge,
}

type Callback = Box<dyn Fn() -> Vec<(Vec<(String, String)>, f64)> + Send + Sync>;

struct Family {
    help: String,
    kind: Kind,
    series: BTreeMap<String, Arc<AtomicU64>>,
    callbacks: Vec<Callback>,
}

/// The registry; cheap to clone and share.
#[derive(Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name{labels}`, created on first use.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        Counter(self.series(name, help, Kind::Counter, labels))
    }

    /// The gauge `name{labels}`, created on first use.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        Gauge(self.series(name, help, Kind::Gauge, labels))
    }

    /// A gauge family whose series are computed at each scrape.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        f: impl Fn() -> Vec<(Vec<(String, String)>, f64)> + Send + Sync + 'static,
    ) {
        let mut families = self.lock();
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind: Kind::Gauge,
            series: BTreeMap::new(),
            callbacks: Vec::new(),
        });
        family.callbacks.push(Box::new(f));
    }

    /// Removes every series of `name` whose labels are not in `keep` (e.g. targets removed from the config).
    pub fn retain(&self, name: &str, keep: impl Fn(&str) -> bool) {
        if let Some(f) = self.lock().get_mut(name) {
            f.series.retain(|labels, _| keep(labels));
        }
    }

    fn series(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
    ) -> Arc<AtomicU64> {
        let labels = render_labels(labels.iter().map(|(k, v)| (*k, *v)));
        let mut families = self.lock();
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            series: BTreeMap::new(),
            callbacks: Vec::new(),
        });
        let initial = match kind {
            Kind::Counter => 0,
            Kind::Gauge => 0f64.to_bits(),
        };
        family
            .series
            .entry(labels)
            .or_insert_with(|| Arc::new(AtomicU64::new(initial)))
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Family>> {
        // Rendering and creating series cannot leave the map half-updated, so a poisoned lock is still sound.
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.lock();
        let mut out = String::with_capacity(4096);
        for (name, family) in families.iter() {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &family.series {
                let raw = value.load(Ordering::Relaxed);
                match family.kind {
                    Kind::Counter => {
                        let _ = writeln!(out, "{name}{labels} {raw}");
                    }
                    Kind::Gauge => {
                        let _ = writeln!(out, "{name}{labels} {}", fmt_f64(f64::from_bits(raw)));
                    }
                }
            }
            for callback in &family.callbacks {
                for (labels, value) in callback() {
                    let labels =
                        render_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    let _ = writeln!(out, "{name}{labels} {}", fmt_f64(value));
                }
            }
        }
        out
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

fn render_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !out.is_empty() {
        out.push('}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_callbacks() {
        let m = Metrics::new();
        m.counter("x_total", "Xs.", &[("result", "up")]).add(3);
        m.gauge("g", "A gauge.", &[("target", "a\"b")]).set(1.5);
        m.gauge_fn("cb", "Computed.", || vec![(vec![], 7.0)]);
        let text = m.render();
        assert!(
            text.contains("# TYPE x_total counter\nx_total{result=\"up\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("g{target=\"a\\\"b\"} 1.5\n"), "{text}");
        assert!(text.contains("# TYPE cb gauge\ncb 7\n"), "{text}");
    }

    #[test]
    fn same_series_is_shared() {
        let m = Metrics::new();
        m.counter("c", "C.", &[]).inc();
        m.counter("c", "C.", &[]).inc();
        assert_eq!(m.counter("c", "C.", &[]).get(), 2);
    }
}
