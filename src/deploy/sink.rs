//! Where a rollout's progress goes, as a [`RolloutSink`]: plain lines ([`WriterSink`]: `host | output` and
//! `host: what happens`) or JSON lines for scripts ([`JsonSink`]: one object per event).

use std::io::Write;
use std::sync::Mutex;

use super::report::{Progress, RolloutSink, host_json};
use crate::core::duration;

/// Lines to a writer, one whole line at a time from any thread.
struct LineWriter(Mutex<Box<dyn Write + Send>>);

impl LineWriter {
    fn new(out: impl Write + Send + 'static) -> Self {
        LineWriter(Mutex::new(Box::new(out)))
    }

    fn line(&self, text: &str) {
        // A poisoned lock only means another thread panicked mid-line; keep printing.
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Writes `host | line` for output and a `host: ...` line per progress event.
pub struct WriterSink {
    out: LineWriter,
}

impl WriterSink {
    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        WriterSink {
            out: LineWriter::new(out),
        }
    }

    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    fn write_line(&self, text: &str) {
        self.out.line(text);
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
    out: LineWriter,
}

impl JsonSink {
    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        JsonSink {
            out: LineWriter::new(out),
        }
    }

    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    fn write(&self, value: serde_json::Value) {
        self.out.line(&value.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::report::{HostReport, HostResult};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writer_sink_prefixes_lines() {
        let buf = Shared::default();
        let sink = WriterSink::new(buf.clone());
        sink.output("web1", "Already up to date.");
        sink.progress(&Progress::StepStarted {
            host: "web1",
            command: "git pull",
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "web1 | Already up to date.\nweb1: $ git pull\n");
    }

    #[test]
    fn json_sink_writes_one_object_per_event() {
        let buf = Shared::default();
        let sink = JsonSink::new(buf.clone());
        let batches = vec![vec!["web1".to_owned()]];
        sink.progress(&Progress::Planned { batches: &batches });
        sink.progress(&Progress::Deregistered { host: "web1" });
        sink.output("web1", "Already up to date.");
        let failed = Err(crate::deploy::health::Unhealthy {
            url: "http://web1/health".into(),
            why: "HTTP 503".into(),
        });
        sink.progress(&Progress::HealthChecked {
            host: "web1",
            attempt: 2,
            result: &failed,
        });
        let mut report = HostReport::skipped("web1");
        report.result = HostResult::Failed;
        report.left_out = true;
        report.duration = Duration::from_millis(1234);
        sink.progress(&Progress::HostFinished { report: &report });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"event": "planned", "batches": [["web1"]]})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"event": "deregistered", "host": "web1"})
        );
        assert_eq!(lines[2]["line"], "Already up to date.");
        assert_eq!(lines[3]["ok"], false);
        assert_eq!(lines[3]["error"], "GET http://web1/health: HTTP 503");
        assert_eq!(
            lines[4],
            serde_json::json!({"event": "host_finished", "host": "web1", "result": "FAILED",
                "seconds": 1.2, "detail": "left out of the balancer", "left_out": true})
        );
    }
}
