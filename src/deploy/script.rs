//! A host's steps in one remote session: every new SSH session costs the host's sshd a process, a login and a
//! shell (about 0.3 s of CPU each on a loaded machine), so a host with several steps runs them as one `sh` script
//! that runs each step as a step alone runs (`sh -c`, bounded on the host by coreutils' `timeout`) and prints a
//! marker line with its exit code. The rollout sees the
//! same thing as step by step: each step's start, its output lines, the first failing step with its exit code
//! and last lines, and each step's own timeout (a step that outlives it ends the session). With a leadership
//! gate the steps go one session each instead, so that the gate is checked before every one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::report::{FailedStage, HostFailure, LAST_LINES, Progress, RolloutSink};
use super::ssh::{RemoteSession, bounded_step};

/// The one script that runs `steps` in order, each under `sh` and bounded on the host by `timeout` (as a step
/// alone is), each followed by `@@tend-{nonce} {i} {code}` on stdout, stopping at the first that fails.
pub fn combined(steps: &[String], nonce: &str, timeout: Duration) -> String {
    let body: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            format!(
                "{}; c=$?; echo \"@@tend-{nonce} {i} $c\"; [ $c -eq 0 ] || exit $c",
                bounded_step(step, timeout)
            )
        })
        .collect();
    body.join("\n")
}

/// The step index and exit code of a marker line of `nonce`.
pub fn marker(line: &str, nonce: &str) -> Option<(usize, i32)> {
    let rest = line
        .trim_end()
        .strip_prefix("@@tend-")?
        .strip_prefix(nonce)?;
    let mut parts = rest.split_whitespace();
    let step = parts.next()?.parse().ok()?;
    let code = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((step, code))
}

/// Where the script is: the running step, since when, and its last lines.
struct Running {
    step: usize,
    since: Instant,
    last: VecDeque<String>,
    /// The exit code of the last step that ended, by its marker.
    ended: Option<(usize, i32)>,
}

/// Runs `steps` (two or more) over `session` as one script; the same result as running them one by one.
pub async fn run_combined<S: RemoteSession>(
    session: &S,
    name: &str,
    steps: &[String],
    timeout: Duration,
    sink: &dyn RolloutSink,
) -> Result<(), HostFailure> {
    let nonce = format!("{:016x}", fastrand::u64(..));
    let script = combined(steps, &nonce, timeout);
    let state = Mutex::new(Running {
        step: 0,
        since: Instant::now(),
        last: VecDeque::with_capacity(LAST_LINES),
        ended: None,
    });
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    sink.progress(&Progress::StepStarted {
        host: name,
        command: &steps[0],
    });
    let mut on_line = |line: &str| {
        let mut s = lock();
        if let Some((i, code)) = marker(line, &nonce) {
            s.ended = Some((i, code));
            if code == 0 && i + 1 < steps.len() {
                s.step = i + 1;
                s.since = Instant::now();
                s.last.clear();
                sink.progress(&Progress::StepStarted {
                    host: name,
                    command: &steps[i + 1],
                });
            }
            return;
        }
        sink.output(name, line);
        if s.last.len() == LAST_LINES {
            s.last.pop_front();
        }
        s.last.push_back(line.to_owned());
    };
    // The whole script may take every step's time; each step is bounded inside it.
    let bound = timeout * u32::try_from(steps.len()).unwrap_or(u32::MAX) + Duration::from_secs(5);
    let run = session.run_bounded(&script, bound, &mut on_line);
    tokio::pin!(run);
    let outcome = loop {
        let deadline = lock().since + timeout;
        tokio::select! {
            r = &mut run => break Some(r),
            _ = tokio::time::sleep_until(deadline.into()) => {
                if lock().since + timeout <= Instant::now() {
                    break None; // the running step outlived its timeout: dropping `run` ends the session
                }
            }
        }
    };
    let s = lock();
    let failing = s.step;
    let (exit_code, reason) = match outcome {
        Some(Ok(Some(0))) if s.ended == Some((steps.len() - 1, 0)) => return Ok(()),
        Some(Ok(Some(0))) => (None, "the session ended before every step ran".to_owned()),
        Some(Ok(Some(code))) => (Some(code), format!("exit code {code}")),
        Some(Ok(None)) => (None, "killed by a signal".to_owned()),
        Some(Err(e)) => (None, crate::core::chain(&e)),
        None => (
            None,
            format!("timed out after {}", crate::core::duration::exact(timeout)),
        ),
    };
    Err(HostFailure {
        stage: FailedStage::Step {
            index: failing,
            command: steps[failing].clone(),
        },
        exit_code,
        reason,
        last_lines: s.last.iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_runs_each_step_bounded_and_marks_its_end() {
        let t = Duration::from_secs(10);
        let s = combined(
            &["echo hi".into(), "systemctl restart 'app'".into()],
            "ab",
            t,
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{}; c=$?; echo \"@@tend-ab 0 $c\"; [ $c -eq 0 ] || exit $c",
                    bounded_step("echo hi", t)
                ),
                format!(
                    "{}; c=$?; echo \"@@tend-ab 1 $c\"; [ $c -eq 0 ] || exit $c",
                    bounded_step("systemctl restart 'app'", t)
                ),
            ]
        );
    }

    #[test]
    fn only_this_scripts_markers_count() {
        assert_eq!(marker("@@tend-ab 1 0", "ab"), Some((1, 0)));
        assert_eq!(marker("@@tend-ab 2 127\r", "ab"), Some((2, 127)));
        assert_eq!(marker("@@tend-xx 1 0", "ab"), None);
        assert_eq!(marker("@@tend-ab 1 0 extra", "ab"), None);
        assert_eq!(marker("echo @@tend-ab 1 0", "ab"), None);
        assert_eq!(marker("@@tend-ab one 0", "ab"), None);
    }
}
