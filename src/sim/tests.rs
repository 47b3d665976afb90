use super::baselines::{Act, AwsTargetTracking, K8sHpa, SimPolicy};
use super::engine::{Outcome, Scenario, oracle, simulate};
use super::*;
use crate::cloud::sim::fleet::SimFleet;
use crate::scale::config::PolicyConfig;

fn scenario(demand: Vec<f64>) -> Scenario {
    Scenario {
        demand,
        step: 30.0,
        boot: 120.0,
        lag: 60.0,
        slo_pct: 0.1,
        bounds: Bounds { min: 1, max: 40 },
    }
}

fn run(s: &Scenario, spec: &str) -> Outcome {
    let spec = PolicySpec::parse(spec).expect("spec");
    let mut p = spec
        .build(s.bounds)
        .expect("builds")
        .expect("simulated policy");
    simulate(s, p.as_mut(), None).expect("not aborted")
}

/// A fleet of `n` instances serving since long before t = 0.
fn ready_fleet(n: usize) -> SimFleet {
    let mut f = SimFleet::new(Duration::from_secs(120));
    for _ in 0..n {
        f.create(-10_000.0);
    }
    f
}

#[test]
fn constant_demand_costs_oracle_plus_initial_boot() {
    // 4.5 servers on 5 instances (90 %): the seed holds; tend too once it has learned demand is calm.
    let s = scenario(vec![4.5; 2 * 60 * 6]);
    let o = oracle(&s);
    let seed = run(&s, "seed");
    assert_eq!(seed.actions, 0);
    assert!(
        (seed.server_hours - (o.server_hours + 5.0 * 120.0 / 3600.0)).abs() < 1e-9,
        "{seed:?}"
    );
    assert_eq!(seed.overloaded_minutes, 0);
    let tend = run(&s, "tend");
    assert_eq!(tend.overloaded_minutes, 0);
    assert!(
        tend.server_hours < o.server_hours * 1.5,
        "{} vs {}",
        tend.server_hours,
        o.server_hours
    );
}

#[test]
fn step_up_overloads_reactive_policies_for_about_boot_plus_lag() {
    let mut demand = vec![5.0; 120];
    demand.extend(vec![15.0; 120]);
    let s = scenario(demand);
    for spec in ["k8s-hpa", "aws-target-tracking"] {
        let o = run(&s, spec);
        // boot + lag = 3 minutes; plus the window, the interval and alarm periods.
        let (lo, hi) = if spec == "k8s-hpa" { (3, 5) } else { (3, 7) };
        assert!(
            (lo..=hi).contains(&o.overloaded_minutes),
            "{spec}: {}",
            o.overloaded_minutes
        );
    }
}

#[test]
fn seed_with_two_at_75_does_not_ping_pong() {
    let s = scenario(vec![1.5; 600]);
    let o = run(&s, "seed");
    assert_eq!(o.actions, 0);
    assert_eq!(o.capacity.last(), Some(&2.0));
}

#[test]
fn hpa_holds_within_tolerance() {
    let f = ready_fleet(10);
    let mut hpa = K8sHpa::new(50.0, Bounds { min: 1, max: 40 });
    assert_eq!(hpa.decide(&f, &[Some(52.5); 10], 0.0), Act::Hold);
    assert_eq!(hpa.decide(&f, &[Some(47.5); 10], 15.0), Act::Hold);
    assert_eq!(hpa.decide(&f, &[Some(60.0); 10], 30.0), Act::Add(2));
}

#[test]
fn hpa_does_not_scale_down_within_300s_of_a_higher_recommendation() {
    let f = ready_fleet(8);
    let mut hpa = K8sHpa::new(50.0, Bounds { min: 1, max: 40 });
    assert_eq!(hpa.decide(&f, &[Some(50.0); 8], 0.0), Act::Hold);
    for k in 1..=20 {
        assert_eq!(
            hpa.decide(&f, &[Some(10.0); 8], f64::from(k) * 15.0),
            Act::Hold,
            "at {}s",
            k * 15
        );
    }
    match hpa.decide(&f, &[Some(10.0); 8], 315.0) {
        Act::Remove(v) => assert_eq!(v.len(), 6),
        other => panic!("expected a scale-down, got {other:?}"),
    }
}

#[test]
fn target_tracking_never_scales_in_above_target() {
    let bounds = Bounds { min: 1, max: 40 };
    // 3 at 40 % (target 50): removing one would give 60 % > 50: no scale-in even after 15 low periods.
    let f = ready_fleet(3);
    let mut tt = AwsTargetTracking::new(50.0, bounds);
    for k in 0..40 {
        assert_eq!(
            tt.decide(&f, &[Some(40.0); 3], 1000.0 + f64::from(k) * 60.0),
            Act::Hold
        );
    }
    // 4 at 30 %: after 15 low periods it removes exactly one (→ 40 %).
    let f = ready_fleet(4);
    let mut tt = AwsTargetTracking::new(50.0, bounds);
    let acts: Vec<Act> = (0..15)
        .map(|k| tt.decide(&f, &[Some(30.0); 4], 1000.0 + f64::from(k) * 60.0))
        .collect();
    assert!(acts[..14].iter().all(|a| *a == Act::Hold));
    assert!(
        matches!(&acts[14], Act::Remove(v) if v.len() == 1),
        "{:?}",
        acts[14]
    );
    // 3 periods above target scale out proportionally, rounding up.
    let f = ready_fleet(4);
    let mut tt = AwsTargetTracking::new(50.0, bounds);
    let acts: Vec<Act> = (0..3)
        .map(|k| tt.decide(&f, &[Some(80.0); 4], 1000.0 + f64::from(k) * 60.0))
        .collect();
    assert_eq!(acts, vec![Act::Hold, Act::Hold, Act::Add(3)]);
}

/// After demand jumps to 3.5× within one minute, tend serves it again within boot + lag + 2 intervals.
fn assert_recovers_from_jump(before: Vec<f64>, name: &str) {
    let jump_at = before.len();
    let base = before[jump_at - 1];
    let mut demand = before;
    demand.push(base * 2.0); // the rise takes one minute: two rows
    demand.extend(vec![base * 3.5; 240]);
    let s = scenario(demand.clone());
    let o = run(&s, "tend");
    let cfg = PolicyConfig::default();
    let allowed = s.boot + s.lag + 2.0 * cfg.interval.as_secs_f64();
    let first_ok = jump_at + (allowed / s.step).ceil() as usize;
    for (row, (cap, d)) in o.capacity.iter().zip(&demand).enumerate().skip(first_ok) {
        assert!(
            f64::from(*cap) >= *d,
            "{name}: row {row} ({}s after the jump): capacity {cap} < demand {d}",
            (row - jump_at) as f64 * s.step
        );
    }
}

#[test]
fn tend_meets_a_jump_to_3_5x_within_boot_lag_and_two_intervals() {
    assert_recovers_from_jump(vec![4.0; 720], "calm");
    // A noisy daily-like wave it has learned for a while.
    let wave: Vec<f64> = (0..1440)
        .map(|i| {
            let x = f64::from(i);
            3.0 + 1.5 * (x / 200.0).sin() + 0.4 * ((x * 7.3).sin() * 43758.5).fract().abs()
        })
        .collect();
    assert_recovers_from_jump(wave, "wave");
}

#[test]
fn policy_specs_parse_and_replay() {
    let spec = PolicySpec::parse("aws-target-tracking:target=68").unwrap();
    assert_eq!(spec.setting(), "target=68");
    assert_eq!(
        PolicySpec::parse(&format!("aws-simple:{}", "high=70,low=40"))
            .unwrap()
            .knobs
            .len(),
        2
    );
    assert!(
        PolicySpec::parse("gcp")
            .unwrap_err()
            .to_string()
            .contains("unknown policy")
    );
    let b = Bounds { min: 1, max: 20 };
    assert!(
        PolicySpec::parse("k8s-hpa:tolerance=3")
            .unwrap()
            .build(b)
            .is_err()
    );
    assert!(
        PolicySpec::parse("k8s-hpa:target=x")
            .unwrap()
            .build(b)
            .is_err()
    );
    assert!(
        PolicySpec::parse("tend:high=85,interval=1m")
            .unwrap()
            .build(b)
            .is_ok()
    );
    assert!(
        PolicySpec::parse("tend:nonsense=1")
            .unwrap()
            .build(b)
            .is_err()
    );
}

#[test]
fn cli_runs_a_trace_with_json_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    let mut text = String::from("time,load\n");
    for i in 0..120 {
        text += &format!("{i},{}\n", 40.0 + 30.0 * (f64::from(i) / 60.0).sin());
    }
    std::fs::write(&trace, text).unwrap();
    let svg = dir.path().join("fleet.svg");
    let request = SimulateRequest {
        trace: trace.clone(),
        column: Some("load".into()),
        options: SimOptions {
            step: Duration::from_secs(30),
            sweep: true,
            ..SimOptions::default()
        },
        svg: Some(svg.clone()),
        risk_svg: Some(dir.path().join("risk.svg")),
        json: true,
    };
    let mut out = Vec::new();
    let report = super::run(&request, &mut out).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let policies = json["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 6);
    for field in [
        "name",
        "setting",
        "server_hours",
        "oracle_ratio",
        "overloaded_minutes",
        "max_overload_pct",
        "mean_utilization",
        "actions",
        "under_provisioning_accuracy",
        "over_provisioning_accuracy",
        "under_provisioning_timeshare",
        "over_provisioning_timeshare",
    ] {
        assert!(
            policies.iter().all(|p| p.get(field).is_some()),
            "missing {field}"
        );
    }
    assert_eq!(report.policy("oracle").map(|p| p.oracle_ratio), Some(1.0));
    assert!(
        report
            .policies
            .iter()
            .all(|p| p.server_hours >= report.policies[5].server_hours - 1e-9)
    );
    assert_eq!(json["equal_risk"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["sweeps"].as_array().map(Vec::len), Some(4));
    let risk = std::fs::read_to_string(dir.path().join("risk.svg")).unwrap();
    assert!(risk.contains("overloaded minutes") && risk.contains("tend (defaults)"));
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.contains("<svg") && svg_text.contains("demand"));
    // Table output names every policy.
    let mut out = Vec::new();
    print_report(&report, false, &mut out).unwrap();
    let table = String::from_utf8(out).unwrap();
    for name in POLICY_NAMES {
        assert!(table.contains(name));
    }
    // A bad column is a clear error.
    let bad = SimulateRequest {
        column: Some("cpu".into()),
        svg: None,
        risk_svg: None,
        ..request
    };
    let e = super::run(&bad, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("no column \"cpu\""), "{e}");
}

#[test]
fn tend_generalises_to_smooth_diurnal_traffic() {
    // Two days of smooth web traffic, the baselines at the settings --sweep picks on the shipped trace: tend meets
    // the SLO at ≤ 0.8× their cost (it learns that rises are small; fixed targets keep fixed headroom).
    let values = synth::diurnal_web(2.0, 30.0, 11);
    let opts = SimOptions {
        step: Duration::from_secs(30),
        policies: ["tend", "aws-target-tracking:target=62", "k8s-hpa:target=58"]
            .iter()
            .map(|s| PolicySpec::parse(s).expect("spec"))
            .collect(),
        ..SimOptions::default()
    };
    let r = run_values(&values, "diurnal-web", &opts).expect("runs");
    let tend = r.policy("tend").expect("tend");
    assert!(tend.meets_slo, "{tend:?}");
    for name in ["aws-target-tracking", "k8s-hpa"] {
        let b = r.policy(name).expect("baseline");
        assert!(
            tend.server_hours <= 0.8 * b.server_hours,
            "tend {} vs {name} {}",
            tend.server_hours,
            b.server_hours
        );
    }
}

#[test]
fn the_sweep_tries_every_point_and_equal_risk_is_at_tends_risk() {
    // Four hours of a wave with bumps; every target of target tracking run one by one must agree with the sweep.
    let values: Vec<f64> = (0..480)
        .map(|i| {
            let x = f64::from(i);
            50.0 + 30.0 * (x / 40.0).sin() + if i % 97 < 3 { 8.0 } else { 0.0 }
        })
        .collect();
    let opts = |policies: Vec<String>, sweep: bool| SimOptions {
        step: Duration::from_secs(30),
        policies: policies
            .iter()
            .map(|p| PolicySpec::parse(p).expect("spec"))
            .collect(),
        sweep,
        ..SimOptions::default()
    };
    let swept = run_values(
        &values,
        "wave",
        &opts(vec!["tend".into(), "aws-target-tracking".into()], true),
    )
    .expect("runs");
    let one_by_one: Vec<String> = (1..=99)
        .map(|t| format!("aws-target-tracking:target={t}"))
        .collect();
    let each = run_values(&values, "wave", &opts(one_by_one, false)).expect("runs");
    let cheapest = |max: u64| {
        each.policies
            .iter()
            .filter(|p| p.overloaded_minutes <= max)
            .min_by(|a, b| a.server_hours.total_cmp(&b.server_hours))
            .map(|p| (p.setting.clone(), p.server_hours))
    };
    let budget = swept.slo_minutes.floor() as u64;
    let tt = swept.policy("aws-target-tracking").expect("row");
    // The cheapest that meets the SLO; when none does, the least overloaded.
    let fewest = each
        .policies
        .iter()
        .min_by(|a, b| {
            a.overloaded_minutes
                .cmp(&b.overloaded_minutes)
                .then(a.server_hours.total_cmp(&b.server_hours))
        })
        .map(|p| (p.setting.clone(), p.server_hours));
    assert_eq!(
        Some((tt.setting.clone(), tt.server_hours)),
        cheapest(budget).or(fewest)
    );
    let tend = swept.policy("tend").expect("tend");
    let eq = &swept.equal_risk[0];
    assert_eq!(eq.tend_overloaded_minutes, tend.overloaded_minutes);
    assert_eq!(
        eq.setting.clone().zip(eq.server_hours),
        cheapest(tend.overloaded_minutes)
    );
    if let (Some(h), Some(r)) = (eq.server_hours, eq.tend_ratio) {
        assert!((r - tend.server_hours / h).abs() < 1e-12);
    }
    // The sweep keeps every finished setting: 99 targets, minus those stopped past the cap.
    let sw = &swept.sweeps[0];
    let finished = each
        .policies
        .iter()
        .filter(|p| p.overloaded_minutes <= sw.cap)
        .count();
    assert_eq!(sw.points.len(), finished);
}
