use super::*;
use crate::scale::config::DEFAULT_LOW;
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

const NOW: u64 = 100_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// An instance launched `age` seconds ago.
fn inst(id: &str, age: u64, state: InstanceState, load: Option<f64>) -> Observed {
    Observed {
        id: id.into(),
        launched_at: UNIX_EPOCH + Duration::from_secs(NOW - age),
        state,
        load,
    }
}

fn fleet(loads: &[Option<f64>]) -> Fleet {
    Fleet {
        instances: loads
            .iter()
            .enumerate()
            .map(|(i, l)| {
                inst(
                    &format!("i-{i:02}"),
                    3600 + i as u64,
                    InstanceState::Running,
                    *l,
                )
            })
            .collect(),
    }
}

fn seed_rules() -> PolicyConfig {
    PolicyConfig {
        predictive: false,
        ..PolicyConfig::default()
    }
}

fn kind(d: &Decision) -> String {
    match d {
        Decision::Hold { .. } => "hold".into(),
        Decision::Add { count, .. } => format!("add {count}"),
        Decision::Remove { id, .. } => format!("remove {id}"),
    }
}

#[test]
fn table_of_rules() {
    let some = |v: f64, n: usize| vec![Some(v); n];
    // (case, loads, predictive, expected)
    let cases: Vec<(&str, Vec<Option<f64>>, bool, &str)> = vec![
        ("n=0 adds up to min", vec![], true, "add 1"),
        (
            "n=1 at 50% holds (no division by zero)",
            some(50.0, 1),
            true,
            "hold",
        ),
        ("n=1 at 95% adds", some(95.0, 1), false, "add 1"),
        (
            "two at 75%, nothing learned yet: the configured rule holds",
            some(75.0, 2),
            true,
            "hold",
        ),
        ("two at 75% hold, seed rules", some(75.0, 2), false, "hold"),
        (
            "three at 65% hold: 97.5% predicted",
            some(65.0, 3),
            false,
            "hold",
        ),
        (
            "three at 65%, nothing learned yet: the configured rule holds",
            some(65.0, 3),
            true,
            "hold",
        ),
        (
            "three at 50%, nothing learned yet: 75% predicted, one goes",
            some(50.0, 3),
            true,
            "remove i-00",
        ),
        (
            "twenty at 40% remove one",
            some(40.0, 20),
            false,
            "remove i-00",
        ),
        (
            "twenty at 40% remove one with the forecast",
            some(40.0, 20),
            true,
            "remove i-00",
        ),
        (
            "ten at 70% remove (77.8% predicted)",
            some(70.0, 10),
            false,
            "remove i-00",
        ),
        (
            "ten at 75% hold (83.3% predicted)",
            some(75.0, 10),
            false,
            "hold",
        ),
        (
            "fifteen at 97% proportional",
            some(97.0, 15),
            false,
            "add 2",
        ),
        ("two at 95% add one", some(95.0, 2), false, "add 1"),
        (
            "median ignores one hot server",
            vec![Some(100.0), Some(60.0), Some(60.0)],
            false,
            "hold",
        ),
        ("saturated surges", some(100.0, 2), false, "add 6"),
        (
            "missing data for more than half holds",
            vec![Some(95.0), None, None],
            true,
            "hold",
        ),
    ];
    for (name, loads, predictive, expected) in cases {
        let cfg = PolicyConfig {
            predictive,
            ..PolicyConfig::default()
        };
        let d = Policy::new().decide(&fleet(&loads), &cfg, now());
        // The most recently launched is i-00 (ages grow with the index).
        assert_eq!(kind(&d), expected, "{name}: {}", d.reason());
    }
}

#[test]
fn missing_data_reason_says_so() {
    let d = Policy::new().decide(&fleet(&[Some(95.0), None, None]), &seed_rules(), now());
    assert!(
        d.reason().contains("no load data for 2 of 3"),
        "{}",
        d.reason()
    );
}

#[test]
fn booting_counts_as_capacity_and_holds() {
    // Two at 95% with one booting (no data, young): 3 ≥ ceil(95·2/90) = 3, hold.
    let mut f = fleet(&[Some(95.0), Some(95.0)]);
    f.instances
        .push(inst("new", 30, InstanceState::Pending, None));
    let d = Policy::new().decide(&f, &seed_rules(), now());
    assert_eq!(kind(&d), "hold", "{}", d.reason());
    // Low load but an instance booting: no removal while it boots.
    let mut f = fleet(&[Some(30.0); 5]);
    f.instances
        .push(inst("new", 30, InstanceState::Running, None));
    let d = Policy::new().decide(&f, &seed_rules(), now());
    assert!(d.reason().contains("booting"), "{}", d.reason());
}

#[test]
fn booting_not_counted_as_zero() {
    // One at 85% and three booting: the median is 85, not 0: no removal, no panic.
    let mut f = fleet(&[Some(85.0)]);
    for i in 0..3 {
        f.instances
            .push(inst(&format!("b{i}"), 10, InstanceState::Pending, None));
    }
    let d = Policy::new().decide(&f, &seed_rules(), now());
    assert_eq!(kind(&d), "hold");
    assert!(d.reason().contains("85.0"), "{}", d.reason());
}

#[test]
fn all_booting_waits() {
    let f = Fleet {
        instances: vec![inst("a", 10, InstanceState::Pending, None)],
    };
    let d = Policy::new().decide(&f, &PolicyConfig::default(), now());
    assert!(
        d.reason().contains("waiting for 1 booting"),
        "{}",
        d.reason()
    );
}

#[test]
fn capped_by_max_and_max_step() {
    let cfg = PolicyConfig {
        predictive: false,
        max: 6,
        max_step: 10,
        ..PolicyConfig::default()
    };
    let d = Policy::new().decide(&fleet(&[Some(180.0); 4]), &cfg, now());
    assert_eq!(kind(&d), "add 2");
    let cfg = PolicyConfig {
        predictive: false,
        max: 20,
        max_step: 3,
        ..PolicyConfig::default()
    };
    let d = Policy::new().decide(&fleet(&[Some(180.0); 4]), &cfg, now());
    assert_eq!(kind(&d), "add 3");
    let cfg = PolicyConfig {
        predictive: false,
        max: 4,
        ..PolicyConfig::default()
    };
    let d = Policy::new().decide(&fleet(&[Some(180.0); 4]), &cfg, now());
    assert!(d.reason().contains("already at max 4"), "{}", d.reason());
}

#[test]
fn never_below_min() {
    let cfg = PolicyConfig {
        predictive: false,
        min: 3,
        ..PolicyConfig::default()
    };
    let d = Policy::new().decide(&fleet(&[Some(5.0); 3]), &cfg, now());
    assert!(d.reason().contains("at min 3"), "{}", d.reason());
    let d = Policy::new().decide(&fleet(&[Some(5.0); 1]), &cfg, now());
    assert_eq!(kind(&d), "add 2");
}

#[test]
fn removes_newest_with_data() {
    let mut f = fleet(&[Some(10.0); 4]);
    f.instances[2].launched_at = now() - Duration::from_secs(60);
    let d = Policy::new().decide(&f, &seed_rules(), now());
    assert_eq!(kind(&d), "remove i-02");
}

#[test]
fn learned_headroom_adds_before_overload() {
    // Demand alternates 9 and 6 servers every 2 minutes: the level (the highest demand within `settle`) stays at
    // 9, so the policy keeps capacity for 9 while at 6.
    let cfg = PolicyConfig::default();
    let mut p = Policy::new();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    for k in 0..600u64 {
        let demand = if (k / 4) % 2 == 0 { 9.0 } else { 6.0 };
        let f = Fleet {
            instances: (0..10)
                .map(|i| Observed {
                    id: format!("i{i}"),
                    launched_at: UNIX_EPOCH,
                    state: InstanceState::Running,
                    load: Some(demand * 10.0),
                })
                .collect(),
        };
        p.observe(&f, &cfg, t0 + cfg.interval * k as u32);
    }
    let t = t0 + cfg.interval * 600;
    let f = fleet(&[Some(100.0 * 6.0 / 7.0); 7]);
    let a = p.assess(&f, &cfg, t);
    assert!((a.forecast.unwrap_or(0.0) - 9.0).abs() < 1e-9, "{a:?}");
    assert_eq!(kind(&p.decide(&f, &cfg, t)), "add 2");
    // Without the level, the rises of 3 from 6 are learned and give the same capacity.
    let cfg = PolicyConfig {
        settle: Duration::ZERO,
        ..cfg
    };
    let mut p = Policy::new();
    for k in 0..600u64 {
        let demand = if (k / 4) % 2 == 0 { 9.0 } else { 6.0 };
        let f = fleet(&[Some(demand * 10.0); 10]);
        p.observe(&f, &cfg, t0 + cfg.interval * k as u32);
    }
    let a = p.assess(&f, &cfg, t);
    assert!((a.forecast.unwrap_or(0.0) - 9.0).abs() < 1e-9, "{a:?}");
}

#[test]
fn without_history_the_configured_rule_decides_and_says_so() {
    // (loads, booting instances, expected, what the reason must say): the seed's rule done right, before anything
    // is learned; no reason claims a learned rise.
    let cfg = PolicyConfig::default();
    let some = |v: f64, n: usize| vec![Some(v); n];
    let cases: Vec<(Vec<Option<f64>>, usize, &str, &str)> = vec![
        (
            some(75.0, 2),
            0,
            "hold",
            "predicted 150.0% after removal, not below low 80%",
        ),
        (
            some(50.0, 3),
            0,
            "remove i-00",
            "predicted 75.0% after removal, below low 80%",
        ),
        (
            some(95.0, 2),
            0,
            "add 1",
            "median 95.0% above high 90%: 2 → 3",
        ),
        (
            some(97.0, 15),
            0,
            "add 2",
            "median 97.0% above high 90%: 15 → 17",
        ),
        (some(95.0, 2), 1, "hold", "1 instance(s) booting"),
        (some(100.0, 2), 0, "add 6", "saturated at median 100.0%"),
        (some(40.0, 2), 1, "hold", "booting"),
    ];
    for (loads, booting, expected, says) in cases {
        let mut f = fleet(&loads);
        for b in 0..booting {
            f.instances
                .push(inst(&format!("b{b}"), 10, InstanceState::Pending, None));
        }
        let p = Policy::new();
        let d = p.decide(&f, &cfg, now());
        assert_eq!(kind(&d), expected, "{loads:?}+{booting}: {}", d.reason());
        assert!(d.reason().contains(says), "{}", d.reason());
        assert!(d.reason().contains(NO_HISTORY), "{}", d.reason());
        assert!(!d.reason().contains("learned"), "{}", d.reason());
        assert_eq!(p.assess(&f, &cfg, now()).basis, NO_HISTORY);
    }
}

#[test]
fn learned_history_is_named_in_the_reason() {
    use crate::scale::past::Past;
    let cfg = PolicyConfig::default();
    let t0 = now() - Duration::from_secs(2 * 3600);
    // Two hours of history at 1.5 servers on 2 instances, a point a minute: learned, and calm.
    let past = Past {
        resolution: Duration::from_secs(60),
        demand: (0..120u64)
            .map(|k| (t0 + Duration::from_secs(k * 60), 1.5))
            .collect(),
    };
    let mut p = Policy::new();
    p.learn_past(&past, &cfg);
    let d = p.decide(&fleet(&[Some(75.0); 2]), &cfg, now());
    assert_eq!(kind(&d), "hold", "{}", d.reason());
    assert!(
        d.reason().contains(
            "learned from 2.0 hours of history: 99.95th-percentile rise over 5.5 min = +0.0%"
        ),
        "{}",
        d.reason()
    );
    assert_eq!(
        kind(&p.decide(&fleet(&[Some(50.0); 3]), &cfg, now())),
        "remove i-00"
    );
}

#[test]
fn config_parses_with_defaults_and_rejects_unknown() {
    let cfg: PolicyConfig = toml::from_str("high = 85\ninterval = \"1m\"").expect("parses");
    assert_eq!(cfg.high, 85.0);
    assert_eq!(cfg.interval, Duration::from_secs(60));
    assert_eq!(cfg.low, DEFAULT_LOW);
    assert!(toml::from_str::<PolicyConfig>("hihg = 85").is_err());
    assert!(
        PolicyConfig {
            low: 95.0,
            ..PolicyConfig::default()
        }
        .validate("scale")
        .len()
            == 1
    );
    assert!(PolicyConfig::default().validate("scale").is_empty());
}

proptest! {
    #[test]
    fn invariants(
        loads in proptest::collection::vec(proptest::option::weighted(0.85, 0.0f64..150.0), 0..30),
        booting in 0usize..4,
        min in 0u32..5,
        extra in 0u32..25,
        predictive in any::<bool>(),
    ) {
        let cfg = PolicyConfig { min, max: min.max(1) + extra, predictive, ..PolicyConfig::default() };
        let mut f = fleet(&loads);
        for i in 0..booting {
            f.instances.push(inst(&format!("b{i}"), 20, InstanceState::Pending, None));
        }
        let n = f.instances.len() as u64;
        let p = Policy::new();
        let d = p.decide(&f, &cfg, now());
        match &d {
            Decision::Add { count, .. } => {
                prop_assert!(*count >= 1);
                prop_assert!(n + u64::from(*count) <= u64::from(cfg.max.max(cfg.min)), "{d:?}");
            }
            Decision::Remove { id, .. } => {
                prop_assert!(n > u64::from(cfg.min), "{d:?}");
                prop_assert!(f.instances.iter().any(|o| &o.id == id));
                if n <= u64::from(cfg.max) {
                    let a = p.assess(&f, &cfg, now());
                    let predicted = a.predicted_after_removal;
                    prop_assert!(predicted.is_some_and(|x| x < cfg.low), "{d:?} {a:?}");
                }
            }
            Decision::Hold { .. } => {}
        }
    }
}

#[test]
fn instances_joining_do_not_overstate_demand() {
    // Five instances carry 4.5 servers of demand (90 %); four more boot. When those report (50 % each: the nine
    // share the same 4.5), the five old ones' lagged averages still read 80 %, and 80 % × 9 would claim 7.2.
    let cfg = PolicyConfig::default();
    let mut p = Policy::new();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let old = |load: f64| {
        (0..5).map(move |i| Observed {
            id: format!("old{i}"),
            launched_at: UNIX_EPOCH,
            state: InstanceState::Running,
            load: Some(load),
        })
    };
    let new = |load: Option<f64>| {
        (0..4).map(move |i| Observed {
            id: format!("new{i}"),
            launched_at: t0 + Duration::from_secs(480),
            state: InstanceState::Running,
            load,
        })
    };
    for k in 0..20u32 {
        let mut instances: Vec<Observed> = old(90.0).collect();
        if k >= 16 {
            instances.extend(new(None));
        }
        p.observe(&Fleet { instances }, &cfg, t0 + cfg.interval * k);
    }
    let t = t0 + cfg.interval * 20;
    let joined = Fleet {
        instances: old(80.0).chain(new(Some(50.0))).collect(),
    };
    assert!((p.assess(&joined, &cfg, t).demand.unwrap() - 7.2).abs() < 1e-9);
    p.observe(&joined, &cfg, t);
    assert!((p.assess(&joined, &cfg, t).demand.unwrap() - 4.5).abs() < 1e-9);
    let level = p.history().level(t, cfg.settle).unwrap();
    assert!(
        (level - 4.5).abs() < 1e-9,
        "level {level}, not the overstated 7.2"
    );
}
