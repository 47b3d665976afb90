//! `tend deploy`'s live progress on a terminal (indicatif, on stderr): a line per batch with its hosts done, and
//! under it a line per host saying what it does now (leaving the balancer, the step and its last output line,
//! the health check, back in) and how it ended.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tend::deploy::{HostResult, Progress, RolloutSink};

/// Longest text kept of a step's output line or a command on a host's line.
const WIDTH: usize = 72;

/// Live lines on stderr; hidden when stderr is not a terminal.
pub struct TermSink {
    multi: MultiProgress,
    lines: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    batches: Vec<ProgressBar>,
    /// Each host's line and its batch.
    hosts: HashMap<String, (ProgressBar, usize)>,
    /// The command each host runs now.
    commands: HashMap<String, String>,
}

impl TermSink {
    /// A sink drawing on stderr.
    pub fn new() -> TermSink {
        TermSink {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: Mutex::new(Lines::default()),
        }
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Lines> {
        // A poisoned lock only means a thread panicked mid-update; keep drawing.
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn planned(&self, batches: &[Vec<String>]) {
        let batch_style =
            ProgressStyle::with_template("{prefix:.bold} [{bar:20}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let host_style = ProgressStyle::with_template("  {prefix} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let width = batches.iter().flatten().map(String::len).max().unwrap_or(4);
        let mut lines = self.lines();
        for (b, hosts) in batches.iter().enumerate() {
            let bar = self.multi.add(
                ProgressBar::new(hosts.len() as u64)
                    .with_style(batch_style.clone())
                    .with_prefix(format!("batch {}/{}", b + 1, batches.len()))
                    .with_message("waiting"),
            );
            bar.tick(); // drawn at once, not at its first change
            lines.batches.push(bar);
            for host in hosts {
                let line = self.multi.add(
                    ProgressBar::new(1)
                        .with_style(host_style.clone())
                        .with_prefix(format!("{host:<width$}"))
                        .with_message("waiting"),
                );
                line.tick();
                lines.hosts.insert(host.clone(), (line, b));
            }
        }
    }

    fn say(&self, host: &str, message: String) {
        if let Some((line, _)) = self.lines().hosts.get(host) {
            line.set_message(message);
        }
    }
}

impl Default for TermSink {
    fn default() -> Self {
        Self::new()
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= WIDTH {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(WIDTH - 1).collect();
        t.push('…');
        t
    }
}

impl RolloutSink for TermSink {
    fn output(&self, host: &str, line: &str) {
        let command = self.lines().commands.get(host).cloned().unwrap_or_default();
        self.say(host, format!("$ {} | {}", cut(&command), cut(line)));
    }

    fn progress(&self, event: &Progress<'_>) {
        match event {
            Progress::Planned { batches } => self.planned(batches),
            Progress::BatchStarted { index, .. } => {
                if let Some(bar) = self.lines().batches.get(*index) {
                    bar.set_message("running");
                }
            }
            Progress::HostStarted { host } => self.say(host, "starting".into()),
            Progress::Deregistered { host } => self.say(host, "out of the balancer".into()),
            Progress::StepStarted { host, command } => {
                self.lines()
                    .commands
                    .insert((*host).to_owned(), (*command).to_owned());
                self.say(host, format!("$ {}", cut(command)));
            }
            Progress::HealthChecked {
                host,
                attempt,
                result,
            } => match result {
                Ok(()) => self.say(host, "healthy".into()),
                Err(why) => self.say(host, format!("health attempt {attempt}: {}", cut(&why.why))),
            },
            Progress::Registered { host } => self.say(host, "back in the balancer".into()),
            Progress::HostFinished { report } => {
                let lines = self.lines();
                let Some((line, batch)) = lines.hosts.get(&report.host) else {
                    return;
                };
                let text = match report.result {
                    HostResult::Succeeded => {
                        format!("ok in {}", tend::core::duration::tenths(report.duration))
                    }
                    _ => format!("{}: {}", report.result, cut(&report.detail())),
                };
                // A rollback reports the host again: count it once.
                let first = !line.is_finished();
                line.finish_with_message(text);
                if let (true, Some(bar)) = (first, lines.batches.get(*batch)) {
                    bar.inc(1);
                    if bar.position() >= bar.length().unwrap_or(0) {
                        bar.finish_with_message("done");
                    }
                }
            }
        }
    }
}
