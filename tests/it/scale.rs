//! The orchestrator end to end: against moto (EC2, CloudWatch, ELBv2 behind a fault proxy) and with the `sim`
//! provider on paused tokio time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tend::alert::Alerter;
use tend::balancer::elb::{ElbBalancer, ElbConfig};
use tend::cloud::Provider;
use tend::cloud::aws::AwsProvider;
use tend::cloud::sim::SimProvider;
use tend::metrics::Metrics;
use tend::scale::config::PolicyConfig;
use tend::scale::policy::Decision;
use tend::scale::store::recent_decisions;
use tend::scale::{FleetStatus, Orchestrator, Outcome, ScaleConfig};
use tend::store::Store;

use crate::cloud::{aws, put_cpu, put_cpu_at, quick_retry, tags_of};
use crate::support::fault_proxy::Fault;

/// A target group in moto's default VPC.
pub async fn target_group(sdk: &aws_config::SdkConfig) -> String {
    let vpc = aws_sdk_ec2::Client::new(sdk)
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    aws_sdk_elasticloadbalancingv2::Client::new(sdk)
        .create_target_group()
        .name("web")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(8080)
        .vpc_id(vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Instance)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string()
}

/// The target group's registered instance ids, sorted.
pub async fn targets(sdk: &aws_config::SdkConfig, arn: &str) -> Vec<String> {
    let out = aws_sdk_elasticloadbalancingv2::Client::new(sdk)
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = out
        .target_health_descriptions()
        .iter()
        .filter_map(|t| t.target()?.id().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

fn policy() -> PolicyConfig {
    PolicyConfig {
        predictive: false,
        min: 1,
        max: 10,
        window: Duration::from_secs(300),
        ..PolicyConfig::default()
    }
}

struct Rig {
    orch: Orchestrator,
    store: Store,
    alerter: Alerter,
}

fn orchestrator(
    provider: Arc<dyn Provider>,
    balancer: Option<Arc<dyn tend::balancer::Balancer>>,
    policy: PolicyConfig,
    dry_run: bool,
) -> Rig {
    let store = Store::open_in_memory().unwrap();
    let metrics = Metrics::new();
    let alerter = Alerter::start(&Default::default(), store.clone(), &metrics).unwrap();
    let config = ScaleConfig {
        dry_run,
        call_timeout: Duration::from_secs(30),
        balancer: None,
        signal: Vec::new(),
        policy,
    };
    let orch = Orchestrator::new(
        config,
        "web",
        provider,
        balancer,
        store.clone(),
        alerter.clone(),
        &metrics,
        FleetStatus::default(),
    );
    Rig {
        orch,
        store,
        alerter,
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

async fn elb(sdk: &aws_config::SdkConfig, arn: &str) -> Arc<dyn tend::balancer::Balancer> {
    Arc::new(ElbBalancer::with_sdk_config(
        sdk,
        ElbConfig {
            target_group_arn: arn.to_string(),
            port: None,
            region: None,
            endpoint_url: None,
        },
        quick_retry(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_cpu_creates_a_named_tagged_registered_instance_and_failures_recover() {
    let (_moto, proxy, p, sdk) = aws().await;
    let p: Arc<AwsProvider> = Arc::new(p);
    let arn = target_group(&sdk).await;
    let a = p.create("web-a", "web-a").await.unwrap();
    let b = p.create("web-b", "web-b").await.unwrap();
    put_cpu(&sdk, &a.id, &[(60, 95.0)]).await;
    put_cpu(&sdk, &b.id, &[(60, 95.0)]).await;

    // Dry run first: decides to add, changes nothing.
    let mut dry = orchestrator(p.clone(), Some(elb(&sdk, &arn).await), policy(), true);
    proxy.clear();
    let report = dry.orch.cycle().await.unwrap();
    assert_eq!(report.outcome, Outcome::DryRun("add 1".into()));
    assert_eq!(proxy.count("RunInstances"), 0);
    assert_eq!(proxy.count("RegisterTargets"), 0);
    assert_eq!(p.list("web-").await.unwrap().len(), 2);
    assert!(recent_decisions(&dry.store, 1).unwrap()[0].dry_run);

    // An EC2 error mid-cycle: alerted, nothing created.
    let mut r = orchestrator(p.clone(), Some(elb(&sdk, &arn).await), policy(), false);
    proxy.inject(
        "RunInstances",
        Fault::Error(400, "InsufficientInstanceCapacity"),
        1,
    );
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Add { count: 1, .. }),
        "{report:?}"
    );
    assert!(
        matches!(&report.outcome, Outcome::Failed { error, .. } if error.contains("InsufficientInstanceCapacity")),
        "{report:?}"
    );
    assert_eq!(r.alert_keys().await, ["ScaleFailed:web"]);
    assert_eq!(p.list("web-").await.unwrap().len(), 2);

    // The next cycle recovers: one new instance, named with the prefix, tagged, registered.
    let report = r.orch.cycle().await.unwrap();
    let Outcome::Done(created) = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(created.len(), 1);
    let listed = p.list("web-").await.unwrap();
    assert_eq!(listed.len(), 3);
    let new = listed.iter().find(|i| i.id == created[0]).unwrap();
    assert!(
        new.name.starts_with("web-") && new.name.len() == 16,
        "{}",
        new.name
    );
    let tags = tags_of(&sdk, &new.id).await;
    assert_eq!(tags.get("Name"), Some(&new.name));
    assert_eq!(tags.get("team").map(String::as_str), Some("ops"));
    assert!(r.alert_keys().await.contains(&"ScaledUp:web".to_string()));
    // The new one has no data yet and boots: hold, no second action for the same shortfall. It runs now
    // (RunInstances answered `pending`), so this cycle registers it.
    let report = r.orch.cycle().await.unwrap();
    assert!(
        matches!(report.decision, Decision::Hold { .. }),
        "{report:?}"
    );
    let mut expected = vec![a.id.clone(), b.id.clone(), new.id.clone()];
    expected.sort();
    assert_eq!(targets(&sdk, &arn).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_at_thirty_percent_lose_one_deregistered_first() {
    let (_moto, proxy, p, sdk) = aws().await;
    let p: Arc<AwsProvider> = Arc::new(p);
    let arn = target_group(&sdk).await;
    let mut made = Vec::new();
    for k in 0..4 {
        let i = p
            .create(&format!("web-{k}"), &format!("web-{k}"))
            .await
            .unwrap();
        put_cpu(&sdk, &i.id, &[(60, 30.0)]).await;
        made.push(i);
    }
    let mut r = orchestrator(p.clone(), Some(elb(&sdk, &arn).await), policy(), false);
    proxy.clear();
    let report = r.orch.cycle().await.unwrap();
    let Decision::Remove { id, .. } = &report.decision else {
        panic!("{report:?}")
    };
    assert!(matches!(report.outcome, Outcome::Done(_)), "{report:?}");
    let actions = proxy.actions();
    let dereg = actions
        .iter()
        .position(|a| a == "DeregisterTargets")
        .unwrap();
    let term = actions
        .iter()
        .position(|a| a == "TerminateInstances")
        .unwrap();
    assert!(dereg < term, "deregistered before terminating: {actions:?}");
    let left = p.list("web-").await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|i| &i.id != id));
    assert_eq!(targets(&sdk, &arn).await.len(), 3);
    assert!(!targets(&sdk, &arn).await.contains(id));
    assert!(r.alert_keys().await.contains(&"ScaledDown:web".to_string()));
}

#[tokio::test(start_paused = true)]
async fn sim_step_in_demand_is_met_within_boot_plus_two_intervals_without_oscillation() {
    let boot = Duration::from_secs(120);
    let interval = Duration::from_secs(30);
    let step_at = 1800.0;
    let demand = Arc::new(move |t: f64| if t < step_at { 1.5 } else { 4.5 });
    let sim = Arc::new(SimProvider::new(boot, demand));
    let config = PolicyConfig {
        min: 1,
        max: 20,
        interval,
        window: interval,
        boot_grace: Duration::from_secs(300),
        ..PolicyConfig::default()
    };
    let mut r = orchestrator(sim.clone(), None, config, false);
    let mut met_at = None;
    let mut actions: Vec<(f64, char)> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..(3 * 3600 / 30) {
        let t = sim.elapsed();
        let report = r.orch.cycle().await.unwrap();
        match &report.decision {
            Decision::Add { reason, .. } => {
                actions.push((t, '+'));
                reasons.push(format!("{t}s + {reason}"));
            }
            Decision::Remove { reason, .. } => {
                actions.push((t, '-'));
                reasons.push(format!("{t}s - {reason}"));
            }
            Decision::Hold { .. } => {}
        }
        if t >= step_at && met_at.is_none() && sim.ready() as f64 >= 4.5 {
            met_at = Some(t);
        }
        sizes.push((t, sim.live()));
        tokio::time::advance(interval).await;
    }
    let met_at = met_at.expect("the step was never met");
    let limit = step_at + (boot + 2 * interval).as_secs_f64();
    assert!(
        met_at <= limit,
        "met at {met_at}s, limit {limit}s; actions {actions:?}"
    );
    // After the step, no add after a remove (no ping-pong) while the configured rule decides (nothing learned
    // yet), nor once the learned headroom decides; the one move allowed between them is the learned headroom's
    // first add (demand just tripled within one horizon, so it keeps capacity for that).
    for phase in ["no history yet", "learned from"] {
        let after: String = actions
            .iter()
            .zip(&reasons)
            .filter(|((t, _), why)| *t >= step_at && why.contains(phase))
            .map(|((_, a), _)| *a)
            .collect();
        let flips = after.as_bytes().windows(2).filter(|w| w[0] != w[1]).count();
        assert!(
            flips <= 1 && !after.contains("-+"),
            "actions after the step ({phase}): {after}\n{}",
            reasons.join("\n")
        );
    }
    // It settles (the learned headroom shrinks the surge's overshoot one instance at a time, then holds).
    let last: Vec<usize> = sizes
        .iter()
        .filter(|(t, _)| *t >= 2.5 * 3600.0)
        .map(|(_, n)| *n)
        .collect();
    assert!(
        last.windows(2).all(|w| w[0] == w[1]),
        "size changes in the last 30 min: {last:?}"
    );
    assert!(last[0] >= 5, "4.5 servers of demand run on {}", last[0]);
}

/// One minute of CPU per point for the last two hours (oldest first), `load(k)` at the k-th minute. Every point
/// sits in the middle of a whole minute, so the instances of a fleet line up minute by minute whenever each is
/// written (CloudWatch averages by whole minutes).
async fn put_history(sdk: &aws_config::SdkConfig, id: &str, load: impl Fn(u64) -> f64) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let newest = SystemTime::UNIX_EPOCH + Duration::from_secs(now - now % 60 - 30);
    let points: Vec<(SystemTime, f64)> = (0..120u64)
        .map(|k| (newest - Duration::from_secs(60 * (119 - k)), load(k)))
        .collect();
    put_cpu_at(sdk, id, &points).await;
}

/// `tend scale --once` against moto (through `endpoint`), on the fleet `prefix`; its output and exit code.
fn scale_once(endpoint: &str, prefix: &str, dry_run: bool) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[store]\npath = \"tend.db\"\n[cloud]\nprovider = \"aws\"\nprefix = \"{prefix}\"\n[cloud.aws]\n\
         region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nimage_id = \"ami-12c6146b\"\n\
         instance_type = \"t3.micro\"\n[scale]\nwindow = \"5m\"\nhistory = \"3h\"\nmin = 1\n"
    );
    std::fs::write(dir.path().join("tend.toml"), config).unwrap();
    let mut args = vec!["scale", "--once"];
    if dry_run {
        args.push("--dry-run");
    }
    let out = std::process::Command::new(crate::support::tend_bin())
        .args(&args)
        .current_dir(dir.path())
        .env_remove("TEND_CONFIG")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run tend");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_once_learns_from_cloudwatch_history_before_its_first_decision() {
    let (_moto, proxy, p, sdk) = aws().await;
    // Two hours flat at 75 % on two instances: the configured thresholds hold (150 % predicted after removal),
    // and nothing in the history asks for headroom.
    for k in 0..2 {
        let i = p
            .create(&format!("flat-{k}"), &format!("flat-{k}"))
            .await
            .unwrap();
        put_history(&sdk, &i.id, |_| 75.0).await;
    }
    proxy.clear();
    let (out, code) = scale_once(&proxy.url, "flat", false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("decision   hold: median 75.0% on 2; predicted 150.0% after removal"),
        "{out}"
    );
    assert!(
        out.contains(
            "learned from 2.0 hours of history: 99.95th-percentile rise over 5.5 min = +0.0%"
        ),
        "{out}"
    );
    assert!(!out.contains("no history"), "{out}");
    // The history of both instances is one batched read, the load another.
    assert_eq!(proxy.count("GetMetricData"), 2, "{:?}", proxy.actions());

    // Three at 50 % for two hours: one goes (75 % predicted, and the calm history fits two).
    let mut three = Vec::new();
    for k in 0..3 {
        let i = p
            .create(&format!("three-{k}"), &format!("three-{k}"))
            .await
            .unwrap();
        put_history(&sdk, &i.id, |_| 50.0).await;
        three.push(i.id);
    }
    let (out, code) = scale_once(&proxy.url, "three", false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("decision   remove "), "{out}");
    assert!(
        out.contains("predicted 75.0% after removal, below low 80%"),
        "{out}"
    );
    assert!(out.contains("learned from 2.0 hours of history"), "{out}");
    assert_eq!(p.list("three-").await.unwrap().len(), 2);

    // Spiky: every 20 minutes the two double from 50 % to 100 % for 3 minutes; 75 % now. The learned rise keeps
    // a third instance ready, and the reason says what was learned.
    for k in 0..2 {
        let i = p
            .create(&format!("spiky-{k}"), &format!("spiky-{k}"))
            .await
            .unwrap();
        put_history(&sdk, &i.id, |m| match m {
            115.. => 75.0,
            m if m % 20 < 3 => 100.0,
            _ => 50.0,
        })
        .await;
    }
    let (out, code) = scale_once(&proxy.url, "spiky", true);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("decision   add 1 (dry run): demand 1.50"),
        "{out}"
    );
    assert!(
        out.contains("learned from 2.0 hours of history: 99.95th-percentile rise over 5.5 min = +"),
        "{out}"
    );

    // A new fleet, four minutes of data: too little history, so the configured rule, said as such.
    for k in 0..2 {
        let i = p
            .create(&format!("fresh-{k}"), &format!("fresh-{k}"))
            .await
            .unwrap();
        put_cpu(
            &sdk,
            &i.id,
            &[(240, 75.0), (180, 75.0), (120, 75.0), (60, 75.0)],
        )
        .await;
    }
    let (out, _) = scale_once(&proxy.url, "fresh", true);
    assert!(
        out.contains("no history yet: the configured high/low rule"),
        "{out}"
    );
    assert!(!out.contains("learned"), "{out}");
}
