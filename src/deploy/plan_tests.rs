//! Unit tests for the planner and the rollout state machine (pure, exhaustive over small rollouts).

use super::*;
use crate::deploy::config::Batch;
use crate::deploy::state::*;
use crate::deploy::target::Target;

fn config(hosts: &[&str], batch: Batch, max_failures: usize) -> DeployConfig {
    let text = format!(
        "hosts = {hosts:?}\nsteps = [\"mkdir -p /tmp/d && echo {{commit}} > /tmp/d/{{host}}\", \"systemctl restart app\"]\n\
         health_url = \"http://{{address}}:8080/health?h={{name}}\"\nrollback_steps = [\"git checkout {{branch}}\"]\n\
         max_failures = {max_failures}\n"
    );
    let mut c: DeployConfig = toml::from_str(&text).unwrap();
    c.batch = batch;
    assert_eq!(c.validate(), vec![]);
    c
}

fn ctx() -> DeployContext {
    DeployContext {
        commit: Some("abc123".into()),
        branch: Some("main".into()),
    }
}

#[test]
fn plan_renders_commands_per_host_and_cuts_batches() {
    let c = config(&["web1", "10.0.0.5:2222", "[::1]:22"], Batch::Count(2), 0);
    let plan = build_plan(&c, &[], &ctx(), None).unwrap();
    assert_eq!(plan.batches, vec![vec![0, 1], vec![2]]);
    assert_eq!(
        plan.hosts[1].steps[0],
        "mkdir -p /tmp/d && echo abc123 > /tmp/d/10.0.0.5:2222"
    );
    assert_eq!(
        plan.hosts[1].health_url.as_deref(),
        Some("http://10.0.0.5:8080/health?h=10.0.0.5:2222")
    );
    assert_eq!(
        plan.hosts[2].health_url.as_deref(),
        Some("http://[::1]:8080/health?h=[::1]:22")
    );
    assert_eq!(
        plan.hosts[0].rollback_steps,
        vec!["git checkout main".to_owned()]
    );
    let text = plan.to_string();
    assert!(
        text.contains("3 host(s) in 2 batch(es); commit abc123, branch main"),
        "{text}"
    );
    assert!(
        text.contains("Batch 2 (1 host(s), in parallel):\n  [::1]:22 (ssh [::1]:22)"),
        "{text}"
    );
    assert!(text.contains("    $ systemctl restart app"), "{text}");
    assert!(text.contains("    rollback $ git checkout main"), "{text}");
}

#[test]
fn percentages_round_up() {
    let hosts: Vec<String> = (1..=10).map(|i| format!("h{i}")).collect();
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let plan = build_plan(&config(&refs, Batch::Percent(25), 0), &[], &ctx(), None).unwrap();
    assert_eq!(
        plan.batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
}

#[test]
fn fleet_hosts_and_only_filter() {
    let mut c = config(&["x"], Batch::Count(5), 0);
    c.hosts = Hosts::Fleet;
    let fleet = [
        Target::fleet("server-1", "10.0.0.1"),
        Target::fleet("server-2", "10.0.0.2"),
    ];
    let plan = build_plan(&c, &fleet, &ctx(), None).unwrap();
    assert_eq!(
        plan.hosts[0].steps[0],
        "mkdir -p /tmp/d && echo abc123 > /tmp/d/10.0.0.1"
    );
    assert_eq!(
        plan.hosts[1].health_url.as_deref(),
        Some("http://10.0.0.2:8080/health?h=server-2")
    );
    let only = build_plan(&c, &fleet, &ctx(), Some("server-2")).unwrap();
    assert_eq!(only.hosts.len(), 1);
    assert_eq!(
        build_plan(&c, &fleet, &ctx(), Some("10.0.0.1"))
            .unwrap()
            .hosts[0]
            .target
            .name,
        "server-1"
    );
    let e = build_plan(&c, &fleet, &ctx(), Some("nope")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--only nope: no such host (hosts: server-1, server-2)"
    );
    assert_eq!(
        build_plan(&c, &[], &ctx(), None).unwrap_err(),
        PlanError::NoHosts
    );
    let bad = [Target::fleet("evil", "-oProxyCommand=sh")];
    assert!(matches!(
        build_plan(&c, &bad, &ctx(), None),
        Err(PlanError::BadAddress { .. })
    ));
}

#[test]
fn missing_commit_is_an_error_naming_the_step() {
    let c = config(&["web1"], Batch::Count(1), 0);
    let e = build_plan(&c, &[], &DeployContext::default(), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "deploy.steps[0]: {commit} has no value (pass --commit or leave it out of the steps)"
    );
}

#[test]
fn hostile_values_are_quoted() {
    let c = config(&["web1"], Batch::Count(1), 0);
    let evil = DeployContext {
        commit: Some("x; rm -rf /".into()),
        branch: Some("$(id)".into()),
    };
    let plan = build_plan(&c, &[], &evil, None).unwrap();
    assert_eq!(
        plan.hosts[0].steps[0],
        "mkdir -p /tmp/d && echo 'x; rm -rf /' > /tmp/d/web1"
    );
    assert_eq!(plan.hosts[0].rollback_steps[0], "git checkout '$(id)'");
}

#[test]
fn target_parsing() {
    let t = Target::parse("web1.example.com").unwrap();
    assert_eq!(
        (t.address.as_str(), t.port, t.name.as_str()),
        ("web1.example.com", None, "web1.example.com")
    );
    assert_eq!(Target::parse("10.0.0.5:2222").unwrap().port, Some(2222));
    let v6 = Target::parse("[2001:db8::1]:2200").unwrap();
    assert_eq!((v6.address.as_str(), v6.port), ("2001:db8::1", Some(2200)));
    assert_eq!(Target::parse("2001:db8::1").unwrap().port, None);
    assert_eq!(Target::parse("[::1]").unwrap().host(), "::1");
    for bad in [
        "", "-p", "a b", "h:0", "h:x", "[::1", "[::1]x", "a;b", "h:70000",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad:?}");
    }
}

// ---- state machine ----

use HostStatus::*;

fn state(batches: &[&[usize]], max_failures: usize, rollback: bool) -> RolloutState {
    let n = batches.iter().map(|b| b.len()).sum();
    RolloutState::from_batches(
        batches.iter().map(|b| b.to_vec()).collect(),
        n,
        max_failures,
        rollback,
    )
}

#[test]
fn success_runs_batches_in_order() {
    let mut s = state(&[&[0, 1], &[2]], 0, true);
    assert_eq!(s.next(), Action::Start(vec![0, 1]));
    s.started(&[0, 1]);
    assert_eq!(s.next(), Action::Wait);
    s.finished(1, true, true);
    assert_eq!(s.next(), Action::Wait, "the batch is not done");
    s.finished(0, true, true);
    assert_eq!(s.next(), Action::Start(vec![2]));
    s.started(&[2]);
    s.finished(2, true, true);
    assert_eq!(s.next(), Action::Finish(Verdict::Succeeded));
    assert_eq!(s.rollbacks(), [RollbackStatus::NotRun; 3]);
}

#[test]
fn a_failure_lets_the_batch_finish_then_rolls_back_that_batch_only() {
    let mut s = state(&[&[0], &[1, 2], &[3]], 0, true);
    s.started(&[0]);
    s.finished(0, true, true);
    assert_eq!(s.next(), Action::Start(vec![1, 2]));
    s.started(&[1, 2]);
    s.finished(1, false, true);
    assert_eq!(s.next(), Action::Wait, "host 2 is still running");
    s.finished(2, true, true);
    assert_eq!(s.next(), Action::RollBack(vec![1, 2]));
    s.rollback_started(&[1, 2]);
    assert_eq!(s.next(), Action::Wait);
    s.rollback_finished(1, true, true);
    s.rollback_finished(2, false, true);
    assert_eq!(s.next(), Action::Finish(Verdict::Failed));
    assert_eq!(s.hosts()[3], Pending, "host 3 never started");
}

#[test]
fn without_rollback_steps_a_failure_finishes_failed() {
    let mut s = state(&[&[0], &[1], &[2]], 0, false);
    s.started(&[0]);
    s.finished(0, true, true);
    s.started(&[1]);
    s.finished(1, false, true);
    assert_eq!(s.next(), Action::Finish(Verdict::Failed));
}

#[test]
fn max_failures_tolerates_that_many() {
    let mut s = state(&[&[0], &[1], &[2]], 1, true);
    s.started(&[0]);
    s.finished(0, false, true);
    assert_eq!(s.next(), Action::Start(vec![1]), "one failure is tolerated");
    s.started(&[1]);
    s.finished(1, true, true);
    s.started(&[2]);
    s.finished(2, true, true);
    assert_eq!(s.next(), Action::Finish(Verdict::Succeeded));
    let mut s = state(&[&[0], &[1], &[2]], 1, false);
    s.started(&[0]);
    s.finished(0, false, true);
    s.started(&[1]);
    s.finished(1, false, true);
    assert_eq!(s.next(), Action::Finish(Verdict::Failed));
}

#[test]
fn cancel_stops_new_hosts_but_waits_for_running_ones() {
    let mut s = state(&[&[0, 1], &[2]], 0, true);
    s.started(&[0, 1]);
    s.cancel();
    assert_eq!(s.next(), Action::Wait);
    s.finished(0, true, true);
    s.finished(1, true, true);
    assert_eq!(s.next(), Action::Finish(Verdict::Cancelled));
    let mut done = state(&[&[0]], 0, false);
    done.started(&[0]);
    done.finished(0, true, true);
    done.cancel();
    assert_eq!(done.next(), Action::Finish(Verdict::Succeeded));
}

/// Drives a rollout to the end: `outcome[i]` is host i's result, `order` picks which running host
/// reports next (by rotation), so different completion orders are covered.
fn drive(
    mut s: RolloutState,
    outcome: &[bool],
    rotate: usize,
) -> (RolloutState, Verdict, Vec<Vec<usize>>) {
    let mut starts = Vec::new();
    let mut running: Vec<usize> = Vec::new();
    let mut rolling: Vec<usize> = Vec::new();
    for _ in 0..100 {
        match s.next() {
            Action::Start(ids) => {
                assert!(running.is_empty() && rolling.is_empty(), "start while busy");
                assert!(
                    s.failures() <= s.max_failures,
                    "start after the rollout failed"
                );
                s.started(&ids);
                starts.push(ids.clone());
                running = ids;
            }
            Action::RollBack(ids) => {
                assert!(running.is_empty());
                s.rollback_started(&ids);
                rolling = ids;
            }
            Action::Wait => {
                if !running.is_empty() {
                    let i = running.remove(rotate % running.len());
                    s.finished(i, outcome[i], true);
                } else {
                    let i = rolling.remove(rotate % rolling.len());
                    s.rollback_finished(i, true, true);
                }
            }
            Action::Finish(v) => return (s, v, starts),
        }
    }
    panic!("rollout did not finish");
}

/// Hosts `0..n` cut into batches of `size`.
fn batches_of(n: usize, size: usize) -> Vec<Vec<usize>> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(<[usize]>::to_vec)
        .collect()
}

#[test]
fn exhaustive_small_rollouts_keep_the_invariants() {
    for n in 1..=5usize {
        for size in 1..=n {
            let batches = batches_of(n, size);
            for max_failures in 0..=2 {
                for has_rollback in [false, true] {
                    for bits in 0..(1u32 << n) {
                        let outcome: Vec<bool> = (0..n).map(|i| bits & (1 << i) == 0).collect();
                        for rotate in 0..3 {
                            let s = RolloutState::from_batches(
                                batches.clone(),
                                n,
                                max_failures,
                                has_rollback,
                            );
                            let (end, verdict, starts) = drive(s, &outcome, rotate);
                            check_end(
                                &batches,
                                &outcome,
                                max_failures,
                                has_rollback,
                                &end,
                                verdict,
                                &starts,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn check_end(
    batches: &[Vec<usize>],
    outcome: &[bool],
    max_failures: usize,
    has_rollback: bool,
    end: &RolloutState,
    verdict: Verdict,
    starts: &[Vec<usize>],
) {
    // Batches start whole and in order.
    assert_eq!(starts, &batches[..starts.len()]);
    // The rollout stops at the first batch where failures exceed max_failures.
    let mut failures = 0;
    let mut stop_batch = None;
    for (b, batch) in batches.iter().enumerate() {
        failures += batch.iter().filter(|&&i| !outcome[i]).count();
        if failures > max_failures {
            stop_batch = Some(b);
            break;
        }
    }
    let last = stop_batch.unwrap_or(batches.len() - 1);
    assert_eq!(starts.len(), last + 1);
    assert_eq!(
        verdict,
        if stop_batch.is_some() {
            Verdict::Failed
        } else {
            Verdict::Succeeded
        }
    );
    for (b, batch) in batches.iter().enumerate() {
        for &i in batch {
            let expected = if b > last {
                Pending
            } else if outcome[i] {
                Succeeded
            } else {
                Failed
            };
            assert_eq!(end.hosts()[i], expected);
            let rolled = stop_batch == Some(b) && has_rollback;
            let want = if rolled {
                RollbackStatus::Done
            } else {
                RollbackStatus::NotRun
            };
            assert_eq!(end.rollbacks()[i], want, "host {i}");
        }
    }
}

/// Drives a rollout that keeps `min` of `n + others` hosts in service: a host leaves the balancer when it
/// starts and comes back only when it succeeds. Checks the count at every step; returns the verdict.
fn drive_keeping(
    mut s: RolloutState,
    outcome: &[bool],
    rotate: usize,
    min: usize,
) -> (RolloutState, Verdict) {
    let mut running: Vec<usize> = Vec::new();
    let mut rolling: Vec<usize> = Vec::new();
    for _ in 0..200 {
        let action = s.next();
        match action.clone() {
            Action::Start(ids) => {
                assert!(!ids.is_empty());
                assert!(rolling.is_empty());
                let batch = s.batch_of(ids[0]);
                assert!(
                    running.iter().all(|&r| s.batch_of(r) == batch),
                    "batches overlap"
                );
                s.started(&ids);
                running.extend(ids);
            }
            Action::RollBack(ids) => {
                assert!(running.is_empty());
                s.rollback_started(&ids);
                rolling.extend(ids);
            }
            Action::Wait => {
                if !running.is_empty() {
                    let i = running.remove(rotate % running.len());
                    s.finished(i, outcome[i], outcome[i]);
                } else {
                    assert!(!rolling.is_empty(), "wait with nothing running");
                    let i = rolling.remove(rotate % rolling.len());
                    s.rollback_finished(i, true, true);
                }
            }
            Action::Finish(v) => {
                assert!(running.is_empty() && rolling.is_empty());
                return (s, v);
            }
        }
        assert!(
            s.in_service() >= min,
            "{} in service < {min} after {action:?}",
            s.in_service()
        );
    }
    panic!("rollout did not finish");
}

#[test]
fn min_in_service_holds_at_every_moment_of_small_rollouts() {
    for n in 1..=5usize {
        for size in 1..=n {
            let batches = batches_of(n, size);
            for others in 0..=1usize {
                for min in 0..(n + others) {
                    for max_failures in 0..=1 {
                        for bits in 0..(1u32 << n) {
                            let outcome: Vec<bool> = (0..n).map(|i| bits & (1 << i) == 0).collect();
                            for rotate in 0..2 {
                                let s = RolloutState::from_batches(
                                    batches.clone(),
                                    n,
                                    max_failures,
                                    true,
                                )
                                .keeping(min, others);
                                let (end, verdict) = drive_keeping(s, &outcome, rotate, min);
                                let failed = outcome.iter().filter(|ok| !**ok).count();
                                if verdict == Verdict::Succeeded {
                                    assert!(end.hosts().iter().all(|h| *h != Pending));
                                    assert!(failed <= max_failures);
                                }
                                if bits == 0 {
                                    assert_eq!(verdict, Verdict::Succeeded, "n={n} min={min}");
                                }
                                if verdict == Verdict::Blocked {
                                    assert!(end.hosts().contains(&Pending));
                                    assert!(end.failures() <= max_failures);
                                    assert!(end.in_service() <= min);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_batch_waits_for_a_host_to_come_back_rather_than_go_below_the_minimum() {
    // 4 hosts, batches of 2, at least 3 in service: one host at a time.
    let mut s = state(&[&[0, 1], &[2, 3]], 0, false).keeping(3, 0);
    assert_eq!(s.next(), Action::Start(vec![0]));
    s.started(&[0]);
    assert_eq!(s.in_service(), 3);
    assert_eq!(s.next(), Action::Wait, "host 1 waits for host 0");
    s.finished(0, true, true);
    assert_eq!(s.next(), Action::Start(vec![1]));
    s.started(&[1]);
    s.finished(1, true, true);
    assert_eq!(s.next(), Action::Start(vec![2]));
}

#[test]
fn a_host_left_out_shrinks_the_next_batch_or_blocks_the_rollout() {
    // 3 hosts, batch 1, one failure tolerated, at least 2 in service: the failed host stays out, so nothing
    // else may leave.
    let mut s = state(&[&[0], &[1], &[2]], 1, false).keeping(2, 0);
    s.started(&[0]);
    s.finished(0, false, false);
    assert_eq!(s.in_service(), 2);
    assert_eq!(s.next(), Action::Finish(Verdict::Blocked));
    // A host that failed but was never taken out (its connection failed) does not count against the minimum.
    let mut s = state(&[&[0], &[1], &[2]], 1, false).keeping(2, 0);
    s.started(&[0]);
    s.finished(0, false, true);
    assert_eq!(s.next(), Action::Start(vec![1]));
}

#[test]
fn rollback_of_hosts_in_service_respects_the_minimum() {
    // Batch [0, 1] of 3 hosts, keep 2: host 0 succeeded (back in), host 1 failed (left out).
    let mut s = state(&[&[0, 1], &[2]], 0, true).keeping(1, 0);
    assert_eq!(s.next(), Action::Start(vec![0, 1]));
    s.started(&[0, 1]);
    s.finished(0, true, true);
    s.finished(1, false, false);
    // In service: hosts 0 and 2 = 2; room for one more to leave.
    assert_eq!(s.next(), Action::RollBack(vec![0, 1]));
    let mut s = state(&[&[0, 1], &[2]], 0, true).keeping(2, 0);
    s.started(&[0]);
    s.finished(0, true, true);
    s.started(&[1]);
    s.finished(1, false, false);
    assert_eq!(s.next(), Action::RollBack(vec![1]), "host 0 must stay in");
    s.rollback_started(&[1]);
    s.rollback_finished(1, true, true);
    assert_eq!(s.next(), Action::RollBack(vec![0]), "now host 0 may leave");
}
