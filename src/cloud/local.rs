//! The `local` provider: instances are processes on this machine (the embedded demo's fleet).
//!
//! Each instance is `sh -c COMMAND` with `{name}` and `{port}` substituted (shell-quoted), started in its own
//! process group so that tend's own Ctrl-C does not reach it and its whole tree can be signalled. Each is recorded
//! in the store with its pid and its start time from `/proc/PID/stat`, so a restarted tend re-adopts the ones
//! still alive, and a recycled pid is never mistaken for one of them. Load is the CPU used by the process group,
//! read from `/proc` (100 % = one core busy), and every reading is kept in the store as the fleet's history;
//! terminate is SIGTERM to the group, then SIGKILL after `grace`.
//!
//! A configured `local` fleet outlives tend and is re-adopted by the next run. The embedded demo's fleet is
//! stopped with tend instead ([`stop_all`]): a demo must not leave workers burning the CPU after Ctrl-C.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::provider::{CloudError, CloudFuture, Instance, Provider, Series, State};
use crate::core::Invalid;
use crate::core::template::{Template, render_shell};

use super::store::{self, Record};
use crate::store::Store;

/// `[cloud.local]`: worker processes on this machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Shell command of one instance; `{name}`, `{port}` and `{exe}` (this tend binary) are substituted,
    /// shell-quoted.
    #[serde(default = "default_command")]
    pub command: String,
    /// Instances get ports from here up, the lowest free one first.
    #[serde(default = "default_base_port")]
    pub base_port: u16,
    /// After SIGTERM, wait this long before SIGKILL.
    #[serde(default = "default_grace", with = "crate::core::duration")]
    pub grace: Duration,
    /// Working directory of the processes [default: tend's].
    pub workdir: Option<PathBuf>,
    /// Each process's output goes to `{log_dir}/{name}.log` [default: discarded].
    pub log_dir: Option<PathBuf>,
}

fn default_command() -> String {
    "exec sh -c 'while :; do sleep 1; done' {name}".into()
}
fn default_base_port() -> u16 {
    9100
}
fn default_grace() -> Duration {
    Duration::from_secs(5)
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            command: default_command(),
            base_port: default_base_port(),
            grace: default_grace(),
            workdir: None,
            log_dir: None,
        }
    }
}

impl LocalConfig {
    /// Pure checks.
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.command.trim().is_empty() {
            out.push(Invalid::new(format!("{path}.command"), "must not be empty"));
        } else if let Err(e) = Template::parse(&self.command, COMMAND_PLACEHOLDERS, true) {
            out.push(Invalid::new(format!("{path}.command"), e.to_string()));
        }
        if self.base_port == 0 {
            out.push(Invalid::new(
                format!("{path}.base_port"),
                "must be 1 or more",
            ));
        }
        out
    }
}

/// Placeholders allowed in `command`.
pub const COMMAND_PLACEHOLDERS: &[&str] = &["name", "port", "exe"];

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process state letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// Process group.
    pub pgrp: i64,
    /// user + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks: with the pid, identifies the process.
    pub start: u64,
}

/// Parses the text of `/proc/PID/stat` (pure).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) ... starttime(22).
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn stat(pid: i64) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Alive, not a zombie, and the same process (same start time) as recorded.
fn alive(pid: i64, start: u64) -> bool {
    stat(pid).is_some_and(|s| s.start == start && s.state != 'Z' && s.state != 'X')
}

/// CPU ticks used by every live process of group `pgrp`.
fn group_ticks(pgrp: i64) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter_map(stat)
        .filter(|s| s.pgrp == pgrp)
        .map(|s| s.cpu_ticks)
        .sum()
}

/// Clock ticks per second of `/proc` times (USER_HZ: 100 on every Linux architecture tend runs on).
const TICKS_PER_SEC: f64 = 100.0;

impl Record {
    fn instance(&self) -> Instance {
        Instance {
            id: self.id.clone(),
            name: self.name.clone(),
            state: State::Running,
            launched_at: self.launched_at,
            private_address: Some("127.0.0.1".into()),
            public_address: None,
            port: Some(self.port),
        }
    }
}

/// Processes on this machine as instances.
#[derive(Debug)]
pub struct LocalProvider {
    config: LocalConfig,
    store: Store,
    /// Samples of (tokio instant, group CPU ticks) per instance id, oldest first.
    samples: Mutex<HashMap<String, Vec<(tokio::time::Instant, u64)>>>,
    create_lock: tokio::sync::Mutex<()>,
}

fn store_err(op: &str, e: crate::store::StoreError) -> CloudError {
    CloudError::permanent(op, e.to_string())
}

impl LocalProvider {
    /// Opens the provider and re-adopts the processes recorded in the store that are still alive (the
    /// others are forgotten).
    pub async fn new(config: LocalConfig, store: Store) -> Result<LocalProvider, CloudError> {
        let p = LocalProvider {
            config,
            store,
            samples: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
        };
        let adopted = p.records().await?;
        if !adopted.is_empty() {
            crate::info!(count = adopted.len(), "Re-adopted local instances");
        }
        Ok(p)
    }

    /// The recorded processes still alive; forgets the dead ones.
    async fn records(&self) -> Result<Vec<Record>, CloudError> {
        let rows = store::records(&self.store)
            .await
            .map_err(|e| store_err("local:list", e))?;
        let (live, dead): (Vec<Record>, Vec<Record>) =
            rows.into_iter().partition(|r| alive(r.pid, r.start));
        for r in dead {
            crate::info!(instance = %r.id, name = %r.name, "Local instance is gone; forgetting it");
            self.forget(&r.id).await?;
        }
        Ok(live)
    }

    async fn forget(&self, id: &str) -> Result<(), CloudError> {
        let id = id.to_string();
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        store::forget(&self.store, id)
            .await
            .map_err(|e| store_err("local:forget", e))?;
        Ok(())
    }

    async fn spawn(&self, name: &str, token: &str, port: u16) -> Result<Record, CloudError> {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "tend".into());
        let command = render_shell(
            &self.config.command,
            &[("name", name), ("port", &port.to_string()), ("exe", &exe)],
        )
        .map_err(|e| CloudError::permanent("local:spawn", format!("command: {e}")))?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(&command).process_group(0);
        cmd.stdin(std::process::Stdio::null());
        match &self.config.log_dir {
            Some(dir) => {
                let open = || -> std::io::Result<std::fs::File> {
                    std::fs::create_dir_all(dir)?;
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(format!("{name}.log")))
                };
                let file = open().map_err(|e| {
                    CloudError::permanent(
                        "local:spawn",
                        format!("log file in {}: {e}", dir.display()),
                    )
                })?;
                let err = file
                    .try_clone()
                    .map_err(|e| CloudError::permanent("local:spawn", format!("log file: {e}")))?;
                cmd.stdout(file).stderr(err);
            }
            None => {
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        if let Some(dir) = &self.config.workdir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|e| {
            CloudError::permanent("local:spawn", format!("cannot run {command:?}: {e}"))
        })?;
        let pid = i64::from(child.id().ok_or_else(|| {
            CloudError::permanent("local:spawn", format!("{command:?} exited at once"))
        })?);
        // Dropping the handle neither kills nor leaks it: tokio reaps exited children in the background.
        drop(child);
        let start = stat(pid).map(|s| s.start).ok_or_else(|| {
            CloudError::permanent("local:spawn", format!("{command:?} exited at once"))
        })?;
        Ok(Record {
            id: format!("local-{pid}"),
            name: name.to_string(),
            token: token.to_string(),
            pid,
            start,
            port,
            launched_at: SystemTime::now(),
        })
    }

    /// CPU percent of `r`'s process group over `window` (≥ 1 s measured: waits when no earlier sample).
    async fn cpu(&self, r: &Record, window: Duration) -> f64 {
        let now = tokio::time::Instant::now();
        let ticks = group_ticks(r.pid);
        let earliest = {
            let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            let list = samples.entry(r.id.clone()).or_default();
            list.retain(|(t, _)| now.duration_since(*t) <= window);
            let earliest = list
                .first()
                .copied()
                .filter(|(t, _)| now.duration_since(*t) >= Duration::from_secs(1));
            list.push((now, ticks));
            earliest
        };
        let (t0, ticks0) = match earliest {
            Some(e) => e,
            None => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let later = (tokio::time::Instant::now(), group_ticks(r.pid));
                self.samples
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(r.id.clone())
                    .or_default()
                    .push(later);
                return percent(ticks, later.1, later.0.duration_since(now));
            }
        };
        percent(ticks0, ticks, now.duration_since(t0))
    }
}

fn percent(from: u64, to: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (to.saturating_sub(from) as f64 / TICKS_PER_SEC / secs * 100.0).max(0.0)
}

async fn signal(sig: &str, pgrp: i64) {
    let _ = tokio::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgrp}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

impl Provider for LocalProvider {
    fn list<'a>(&'a self, prefix: &'a str) -> CloudFuture<'a, Vec<Instance>> {
        Box::pin(async move {
            Ok(self
                .records()
                .await?
                .iter()
                .filter(|r| r.name.starts_with(prefix))
                .map(Record::instance)
                .collect())
        })
    }

    fn create<'a>(&'a self, name: &'a str, client_token: &'a str) -> CloudFuture<'a, Instance> {
        Box::pin(async move {
            let _one_at_a_time = self.create_lock.lock().await;
            let records = self.records().await?;
            if let Some(r) = records
                .iter()
                .find(|r| r.token == client_token || r.name == name)
            {
                return Ok(r.instance());
            }
            let used: Vec<u16> = records.iter().map(|r| r.port).collect();
            let port = (self.config.base_port..=u16::MAX)
                .find(|p| !used.contains(p))
                .ok_or_else(|| CloudError::permanent("local:spawn", "no free port left"))?;
            let r = self.spawn(name, client_token, port).await?;
            store::insert(&self.store, r.clone())
                .await
                .map_err(|e| store_err("local:record", e))?;
            crate::info!(instance = %r.id, name, port, "Started a local instance");
            Ok(r.instance())
        })
    }

    fn terminate<'a>(&'a self, id: &'a str) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            let Some(r) = self.records().await?.into_iter().find(|r| r.id == id) else {
                return Ok(());
            };
            signal("TERM", r.pid).await;
            let deadline = tokio::time::Instant::now() + self.config.grace;
            while alive(r.pid, r.start) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if alive(r.pid, r.start) {
                crate::warning!(instance = %r.id, "Local instance ignored SIGTERM; killing it");
                signal("KILL", r.pid).await;
            }
            self.forget(&r.id).await
        })
    }

    fn load<'a>(
        &'a self,
        ids: &'a [String],
        window: Duration,
    ) -> CloudFuture<'a, Vec<Option<f64>>> {
        Box::pin(async move {
            let records = self.records().await?;
            // Concurrently, so a first reading of the whole fleet takes one second, not one per instance.
            let measures = ids
                .iter()
                .map(|id| {
                    let record = records.iter().find(|r| &r.id == id).cloned();
                    async move {
                        match record {
                            Some(r) => Some(self.cpu(&r, window).await),
                            None => None,
                        }
                    }
                })
                .collect();
            let loads = join_all(measures).await;
            // Each reading is kept as the fleet's history, in the background so the reading returns at once (a
            // failure to keep it costs only history).
            let at = crate::core::time::millis(SystemTime::now());
            let rows = ids
                .iter()
                .zip(&loads)
                .filter_map(|(id, l)| l.map(|l| (id.clone(), at, l)))
                .collect();
            let db = self.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store::record_loads(&db, rows).await {
                    crate::warning!(%error, "Cannot keep the local instances' load history");
                }
            });
            Ok(loads)
        })
    }

    fn history<'a>(
        &'a self,
        ids: &'a [String],
        since: SystemTime,
        until: SystemTime,
    ) -> CloudFuture<'a, Vec<Series>> {
        Box::pin(async move {
            use crate::core::time::{from_millis, millis};
            let rows = store::load_history(&self.store, ids.to_vec(), millis(since), millis(until))
                .await
                .map_err(|e| store_err("local:history", e))?;
            Ok(ids
                .iter()
                .filter_map(|id| {
                    let points: Vec<(SystemTime, f64)> = rows
                        .iter()
                        .filter(|r| &r.0 == id)
                        .map(|r| (from_millis(r.1), r.2))
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

/// Stops every recorded process named with `prefix` (SIGTERM, then SIGKILL after `grace`) and forgets it;
/// how many were stopped. For the embedded demo's shutdown: a configured fleet is left running on purpose.
pub async fn stop_all(
    config: &LocalConfig,
    store: &Store,
    prefix: &str,
) -> Result<usize, CloudError> {
    let provider = LocalProvider::new(config.clone(), store.clone()).await?;
    let instances = provider.list(prefix).await?;
    for instance in &instances {
        provider.terminate(&instance.id).await?;
        crate::info!(instance = %instance.id, name = %instance.name, "Stopped a demo worker");
    }
    Ok(instances.len())
}

/// Awaits every future concurrently, keeping their order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_validated_with_the_guarded_template() {
        let bad = LocalConfig {
            command: "run '{name}' {other}".into(),
            ..LocalConfig::default()
        };
        let problems = bad.validate("cloud.local");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("inside quotes"),
            "{problems:?}"
        );
        assert!(LocalConfig::default().validate("cloud.local").is_empty());
    }

    #[test]
    fn parses_proc_stat_with_spaces_in_the_command() {
        let text = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.start, 987654);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn percent_of_one_core() {
        assert_eq!(percent(0, 100, Duration::from_secs(1)), 100.0);
        assert_eq!(percent(0, 50, Duration::from_secs(2)), 25.0);
        assert_eq!(percent(10, 5, Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = i64::from(std::process::id());
        let s = stat(pid).unwrap();
        assert!(alive(pid, s.start));
        assert!(!alive(pid, s.start + 1));
    }
}
