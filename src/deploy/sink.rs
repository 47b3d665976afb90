//! Where a rollout's progress goes, as a [`RolloutSink`]: plain lines ([`WriterSink`]: `host | output` and
//! `host: what happens`) or JSON lines for scripts ([`JsonSink`]: one object per event).

use std::io::Write;
use std::sync::Mutex;

use super::report::{Progress, RolloutSink, host_json};
use crate::core::duration;

/// Writes `host | line` for output and a `host: ...` line per progress event.
pub struct WriterSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl WriterSink {
    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        WriterSink {
            out: Mutex::new(Box::new(out)),
        }
    }

    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    fn write_line(&self, text: &str) {
        // A poisoned lock only means another thread panicked mid-line; keep printing.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl RolloutSink for WriterSink {
    fn output(&self, host: &str, line: &str) {
        self.write_line(&format!("{host} | {line}"));
    }

    fn progress(&self, event: &Progress<'_>) {
        match event {
            Progress::Planned { batches } => self.write_line(&format!(
                "Deploying to {} host(s) in {} batch(es)",
                batches.iter().map(Vec::len).sum::<usize>(),
                batches.len()
            )),
            Progress::BatchStarted { index, of } => {
                self.write_line(&format!("Batch {}/{of}", index + 1))
            }
            Progress::HostStarted { host } => self.write_line(&format!("{host}: deploying")),
            Progress::Deregistered { host } => {
                self.write_line(&format!("{host}: out of the balancer"))
            }
            Progress::Registered { host } => {
                self.write_line(&format!("{host}: back in the balancer"))
            }
            Progress::StepStarted { host, command } => {
                self.write_line(&format!("{host}: $ {command}"))
            }
            Progress::HealthChecked {
                host,
                attempt,
                result: Err(why),
            } => self.write_line(&format!("{host}: health attempt {attempt} failed: {why}")),
            Progress::HealthChecked { .. } => {}
            Progress::HostFinished { report } => self.write_line(&format!(
                "{}: {} in {}",
                report.host,
                report.result,
                duration::tenths(report.duration)
            )),
        }
    }
}

/// One JSON object per line for each event (`tend deploy --json`): `planned`, `batch`, `host_started`,
/// `deregistered`, `step`, `output`, `health`, `registered`, `host_finished`; the CLI adds a `summary` last.
pub struct JsonSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonSink {
    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        JsonSink {
            out: Mutex::new(Box::new(out)),
        }
    }

    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    fn write(&self, value: serde_json::Value) {
        // A poisoned lock only means another thread panicked mid-line; keep printing.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }
}

impl RolloutSink for JsonSink {
    fn output(&self, host: &str, line: &str) {
        self.write(serde_json::json!({ "event": "output", "host": host, "line": line }));
    }

    fn progress(&self, event: &Progress<'_>) {
        use serde_json::json;
        self.write(match event {
            Progress::Planned { batches } => json!({ "event": "planned", "batches": batches }),
            Progress::BatchStarted { index, of } => {
                json!({ "event": "batch", "batch": index + 1, "of": of })
            }
            Progress::HostStarted { host } => json!({ "event": "host_started", "host": host }),
            Progress::Deregistered { host } => json!({ "event": "deregistered", "host": host }),
            Progress::StepStarted { host, command } => {
                json!({ "event": "step", "host": host, "command": command })
            }
            Progress::HealthChecked {
                host,
                attempt,
                result,
            } => json!({
                "event": "health",
                "host": host,
                "attempt": attempt,
                "ok": result.is_ok(),
                "error": result.as_ref().err().map(ToString::to_string),
            }),
            Progress::Registered { host } => json!({ "event": "registered", "host": host }),
            Progress::HostFinished { report } => {
                let mut v = host_json(report);
                if let Some(o) = v.as_object_mut() {
                    o.insert("event".into(), json!("host_finished"));
                }
                v
            }
        });
    }
}
