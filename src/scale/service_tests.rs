use super::*;
use crate::balancer::testing::FakeBalancer;
use crate::cloud::testing::{FakeProvider, Op};
use crate::scale::config::PolicyConfig;
use crate::scale::cycle::Outcome;
use crate::scale::names::new_name;
use crate::scale::store::{memory_key, recent_decisions};

struct Rig {
    provider: Arc<FakeProvider>,
    balancer: Arc<FakeBalancer>,
    store: Store,
    alerter: Alerter,
    metrics: Metrics,
    orch: Orchestrator,
}

fn rig(provider: FakeProvider, dry_run: bool) -> Rig {
    let provider = Arc::new(provider);
    let balancer = Arc::new(FakeBalancer::default());
    let store = Store::open_in_memory().unwrap();
    let metrics = Metrics::new();
    let alerter = Alerter::start(&Default::default(), store.clone(), &metrics).unwrap();
    let config = ScaleConfig {
        dry_run,
        call_timeout: Duration::from_secs(5),
        balancer: None,
        signal: Vec::new(),
        policy: PolicyConfig {
            predictive: false,
            min: 1,
            max: 10,
            ..PolicyConfig::default()
        },
    };
    let orch = Orchestrator::new(
        config,
        "web",
        provider.clone(),
        Some(balancer.clone()),
        store.clone(),
        alerter.clone(),
        &metrics,
        FleetStatus::default(),
    );
    Rig {
        provider,
        balancer,
        store,
        alerter,
        metrics,
        orch,
    }
}

impl Rig {
    async fn alert_keys(&self) -> Vec<String> {
        self.alerter.flush_async(Duration::from_secs(2)).await;
        self.store
            .blocking(|c| {
                let mut st = c.prepare("SELECT key FROM alerts ORDER BY id")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .unwrap()
    }
}

#[tokio::test]
async fn high_load_creates_registers_alerts_and_stores() {
    let mut r = rig(FakeProvider::with_running("web", 2, Some(95.0)), false);
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Add { count: 1, .. }),
        "{report:?}"
    );
    let calls = r.provider.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].starts_with("create web-"), "{calls:?}");
    // The two seeds and the new one (running at once) are registered.
    assert_eq!(
        r.balancer.calls(),
        ["register i-seed0", "register i-seed1", "register i-new1"]
    );
    assert_eq!(r.alert_keys().await, ["ScaledUp:web"]);
    let stored = recent_decisions(&r.store, 5).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].action, "add");
    assert_eq!(stored[0].median, Some(95.0));
    assert!(stored[0].fleet.contains("i-seed1"), "{}", stored[0].fleet);
    assert!(
        stored[0].outcome.starts_with("done: i-new1"),
        "{:?}",
        stored[0]
    );
    let m = r.metrics.render();
    assert!(
        m.contains("tend_scale_actions_total{action=\"add\"} 1"),
        "{m}"
    );
    assert!(m.contains("tend_fleet_instances 2"), "{m}");
    // Next cycle: the new one has no data and boots: hold, nothing registered twice.
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Hold { .. }),
        "{report:?}"
    );
    assert_eq!(r.balancer.calls().len(), 3);
}

#[tokio::test]
async fn low_load_deregisters_then_terminates_the_newest() {
    let mut r = rig(FakeProvider::with_running("web", 4, Some(30.0)), false);
    let report = r.orch.cycle().await.unwrap();
    // seed0 is the newest (launched 3600 s ago; the others earlier).
    assert_eq!(
        report.decision,
        Decision::Remove {
            id: "i-seed0".into(),
            reason: report.decision.reason().into()
        }
    );
    assert_eq!(r.balancer.calls().last().unwrap(), "deregister i-seed0");
    assert_eq!(r.provider.calls(), ["terminate i-seed0"]);
    assert_eq!(r.alert_keys().await, ["ScaledDown:web"]);
}

#[tokio::test]
async fn a_failed_deregistration_leaves_the_instance_running() {
    let mut r = rig(FakeProvider::with_running("web", 4, Some(30.0)), false);
    *r.balancer.fail.lock().unwrap() = Some("AccessDenied: no".into());
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.outcome, Outcome::Failed { .. }),
        "{report:?}"
    );
    assert!(r.provider.calls().is_empty());
    assert!(
        r.alert_keys()
            .await
            .contains(&"ScaleFailed:web".to_string())
    );
}

#[tokio::test]
async fn dry_run_changes_nothing_but_stores_the_decision() {
    let mut r = rig(FakeProvider::with_running("web", 2, Some(95.0)), true);
    let report = r.orch.cycle().await.unwrap();
    assert_eq!(report.outcome, Outcome::DryRun("add 1".into()));
    assert!(r.provider.calls().is_empty());
    assert!(r.balancer.calls().is_empty());
    let stored = recent_decisions(&r.store, 1).unwrap();
    assert!(stored[0].dry_run && stored[0].action == "add");
}

#[tokio::test]
async fn a_failure_is_alerted_and_the_next_cycle_recovers() {
    let mut r = rig(FakeProvider::with_running("web", 2, Some(95.0)), false);
    r.provider.fail_once(
        Op::Create,
        CloudError::permanent("ec2:RunInstances", "InstanceLimitExceeded: quota"),
    );
    let report = r.orch.cycle().await.unwrap();
    match &report.outcome {
        Outcome::Failed { error, done } => {
            assert!(done.is_empty());
            assert!(error.contains("InstanceLimitExceeded"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.alert_keys().await, ["ScaleFailed:web"]);
    r.provider.fail_once(
        Op::List,
        CloudError::transient("ec2:DescribeInstances", "503"),
    );
    assert!(r.orch.cycle().await.is_err());
    let report = r.orch.cycle().await.unwrap();
    assert!(matches!(report.outcome, Outcome::Done(_)), "{report:?}");
    assert!(
        r.metrics
            .render()
            .contains("tend_scale_actions_total{action=\"failed\"} 2")
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_times_out() {
    let r = rig(FakeProvider::with_running("web", 2, Some(50.0)), false);
    *r.provider.hang.lock().unwrap() = true;
    let mut orch = r.orch;
    let err = orch.cycle().await.unwrap_err();
    assert!(
        matches!(err, ScaleError::Timeout { op: "list", .. }),
        "{err}"
    );
}

#[test]
fn new_names_do_not_collide() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut taken = HashSet::new();
    for _ in 0..2000 {
        let n = new_name("web", now, &taken);
        assert!(n.starts_with("web-") && n.len() == "web-".len() + 12, "{n}");
        assert!(taken.insert(n));
    }
}

/// A stand-in for Prometheus's HTTP API on loopback: answers `/api/v1/query` with the value the test sets
/// (or a 500 when it is None).
async fn prometheus(value: Arc<std::sync::Mutex<Option<f64>>>) -> String {
    use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
    async fn query(
        State(v): State<Arc<std::sync::Mutex<Option<f64>>>>,
    ) -> Result<Json<serde_json::Value>, StatusCode> {
        let v = (*v.lock().unwrap()).ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(Json(
            serde_json::json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1.0, v.to_string()]}]}}),
        ))
    }
    let app = Router::new()
        .route("/api/v1/query", get(query))
        .with_state(value);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_prometheus_signal_adds_and_must_allow_removals() {
    let latency = Arc::new(std::sync::Mutex::new(Some(0.5)));
    let url = prometheus(latency.clone()).await;
    let mut r = rig(FakeProvider::with_running("web", 4, Some(50.0)), false);
    r.orch.config.signal = vec![crate::scale::signal::SignalConfig {
        name: "p99-latency".into(),
        prometheus: url,
        query: "histogram_quantile(0.99, rate(http_seconds_bucket[5m]))".into(),
        high: 0.3,
        low: 0.1,
        timeout: Duration::from_secs(2),
    }];
    // Load 50% alone would hold; latency 0.5 s over its 0.3 s high asks for 4·0.5/0.3 = 7 instances: 3 more.
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Add { count: 3, .. }),
        "{report:?}"
    );
    assert!(
        report.decision.reason().contains("p99-latency"),
        "{report:?}"
    );

    // Low load and low latency: the load policy removes one, and the signal allows it.
    let mut r = rig(FakeProvider::with_running("web", 4, Some(20.0)), false);
    *latency.lock().unwrap() = Some(0.05);
    r.orch.config.signal = vec![crate::scale::signal::SignalConfig {
        name: "p99-latency".into(),
        prometheus: prometheus(latency.clone()).await,
        query: "q".into(),
        high: 0.3,
        low: 0.1,
        timeout: Duration::from_secs(2),
    }];
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Remove { .. }),
        "{report:?}"
    );

    // Prometheus failing: no removal on a signal without data.
    r.provider.set_all_loads(20.0);
    *latency.lock().unwrap() = None;
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(&report.decision, Decision::Hold { reason } if reason.contains("p99-latency has no data")),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_policy_memory_survives_a_restart() {
    let mut r = rig(FakeProvider::with_running("web", 3, Some(50.0)), true);
    for _ in 0..40 {
        r.orch.cycle().await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
    }
    let before = r.orch.policy.history().snapshot();
    assert!(!before.samples.is_empty() || !before.rises.is_empty());
    // Stopping writes the memory; a new orchestrator on the same store goes on from it.
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let config = r.orch.config.clone();
    r.orch.run(shutdown).await.unwrap();
    let open = |prefix: &str| {
        Orchestrator::new(
            config.clone(),
            prefix,
            r.provider.clone(),
            None,
            r.store.clone(),
            r.alerter.clone(),
            &r.metrics,
            FleetStatus::default(),
        )
    };
    assert_eq!(open("web").policy.history().snapshot(), before);
    // Another fleet's memory is its own; a damaged one is replaced, not trusted.
    r.store.meta_set(&memory_key("db"), "{not json").unwrap();
    let other = open("db");
    assert_eq!(other.policy.history().learned(), 0);
}

fn predictive(r: &mut Rig) {
    r.orch.config.policy.predictive = true;
}

#[tokio::test]
async fn the_first_cycle_learns_from_the_fleets_history_terminated_instances_included() {
    // Two instances at 75 % now; a third, terminated an hour ago, is known only from a stored decision.
    let mut r = rig(FakeProvider::with_running("web", 2, Some(75.0)), false);
    predictive(&mut r);
    let gone = serde_json::json!([{"id": "i-gone", "name": "web-gone"}]).to_string();
    let row = DecisionRow {
        at: crate::core::time::millis(SystemTime::now() - Duration::from_secs(3600)),
        action: "hold",
        count: 0,
        instance: None,
        reason: "r".into(),
        dry_run: false,
        instances: 1,
        median: None,
        predicted: None,
        fleet: gone,
        outcome: "nothing to do".into(),
    };
    store::record_decision(&r.store, row).await.unwrap();
    let minute = Duration::from_secs(60);
    let two_hours = Duration::from_secs(7200);
    for id in ["i-seed0", "i-seed1", "i-gone"] {
        r.provider.set_past(id, two_hours, minute, |_| 50.0);
    }
    let report = r.orch.cycle().await.unwrap();
    assert!(
        *r.provider.history_calls.lock().unwrap() == ["history i-gone i-seed0 i-seed1"],
        "{:?}",
        r.provider.history_calls
    );
    // Three at 50 % for two hours: 1.5 servers, calm. Now two at 75 %: 1.5 servers, no rise to keep: hold.
    assert!(
        matches!(report.decision, Decision::Hold { .. }),
        "{report:?}"
    );
    assert!(
        report
            .assessment
            .basis
            .starts_with("learned from 2.0 hours of history: 99.95th-percentile rise"),
        "{}",
        report.assessment.basis
    );
    assert!(report.decision.reason().contains("learned from 2.0 hours"));
    // A new leader reads only what is newer than its memory: nothing is learned twice.
    let learned = r.orch.policy.history().learned();
    let w = r.orch.warm_start().await.unwrap();
    assert_eq!(w.with_history, 0, "{w:?}");
    assert_eq!(r.orch.policy.history().learned(), learned);
}

#[tokio::test]
async fn spiky_history_keeps_headroom_and_no_history_is_the_configured_rule() {
    let minute = Duration::from_secs(60);
    let two_hours = Duration::from_secs(7200);
    // Every 20 minutes the load doubles for 3 minutes (50 % → 100 % on two: 1 → 2 servers). Now 1.5 servers:
    // the learned rise of +100 % needs a third instance before the next spike.
    let mut r = rig(FakeProvider::with_running("web", 2, Some(75.0)), false);
    predictive(&mut r);
    for id in ["i-seed0", "i-seed1"] {
        r.provider.set_past(
            id,
            two_hours,
            minute,
            |k| if k % 20 < 3 { 100.0 } else { 50.0 },
        );
    }
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Add { .. }),
        "{report:?}"
    );
    assert!(
        report
            .decision
            .reason()
            .contains("learned from 2.0 hours of history"),
        "{report:?}"
    );

    // The history cannot be read: said in the log, and the policy is the configured rule (2 at 75 % hold).
    let mut r = rig(FakeProvider::with_running("web", 2, Some(75.0)), false);
    predictive(&mut r);
    r.provider.fail_once(
        Op::History,
        CloudError::permanent("cloudwatch:GetMetricData", "AccessDenied"),
    );
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(&report.decision, Decision::Hold { reason } if reason.contains("no history yet: the configured high/low rule")),
        "{report:?}"
    );
    // With no history at all (a new fleet), the same.
    let mut r = rig(FakeProvider::with_running("web", 3, Some(50.0)), false);
    predictive(&mut r);
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(&report.decision, Decision::Remove { reason, .. } if reason.contains("no history yet")),
        "{report:?}"
    );
}
