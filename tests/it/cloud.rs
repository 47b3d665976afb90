//! Cloud providers against real servers: `aws` against moto (behind a fault-injecting proxy), `local` with
//! real processes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tend::balancer::Balancer;
use tend::balancer::elb::{ElbBalancer, ElbConfig};
use tend::cloud::aws::{AwsConfig, AwsProvider};
use tend::cloud::local::{LocalConfig, LocalProvider};
use tend::cloud::{CloudError, Instance, Provider, Retry, State};

use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::moto::Moto;

pub fn quick_retry() -> Retry {
    Retry {
        attempts: 3,
        backoff: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
    }
}

pub fn aws_config() -> AwsConfig {
    AwsConfig {
        image_id: Some("ami-12c6146b".into()),
        instance_type: Some("t3.micro".into()),
        tags: BTreeMap::from([("team".to_string(), "ops".to_string())]),
        page_size: Some(5),
        ..AwsConfig::default()
    }
}

/// moto, a proxy in front of it, and a provider talking to the proxy.
pub async fn aws() -> (Moto, FaultProxy, AwsProvider, aws_config::SdkConfig) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url()).await;
    let sdk = Moto::sdk_config(&proxy.url).await;
    let provider = AwsProvider::with_sdk_config(&sdk, aws_config(), quick_retry());
    (moto, proxy, provider, sdk)
}

pub async fn tags_of(sdk: &aws_config::SdkConfig, id: &str) -> BTreeMap<String, String> {
    let out = aws_sdk_ec2::Client::new(sdk)
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect()
}

pub async fn put_cpu(sdk: &aws_config::SdkConfig, id: &str, values: &[(u64, f64)]) {
    let now = SystemTime::now();
    let at: Vec<(SystemTime, f64)> = values
        .iter()
        .map(|(ago, v)| (now - Duration::from_secs(*ago), *v))
        .collect();
    put_cpu_at(sdk, id, &at).await;
}

/// CPUUtilization points of instance `id` at the given times.
pub async fn put_cpu_at(sdk: &aws_config::SdkConfig, id: &str, values: &[(SystemTime, f64)]) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let cw = aws_sdk_cloudwatch::Client::new(sdk);
    let data = values
        .iter()
        .map(|(at, v)| {
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(Dimension::builder().name("InstanceId").value(id).build())
                .value(*v)
                .timestamp((*at).into())
                .build()
        })
        .collect();
    cw.put_metric_data()
        .namespace("AWS/EC2")
        .set_metric_data(Some(data))
        .send()
        .await
        .unwrap();
}

fn ids(list: &[Instance]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|i| i.id.clone()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_lists_every_page_of_the_prefix_creates_once_per_token_and_terminates() {
    let (_moto, proxy, p, sdk) = aws().await;
    let mut made = Vec::new();
    for k in 0..7 {
        let name = format!("web-{k}");
        made.push(p.create(&name, &name).await.unwrap());
    }
    p.create("other-1", "other-1").await.unwrap();
    // The same token (and name) again: the same instance, not a new one.
    let again = p.create("web-3", "web-3").await.unwrap();
    assert_eq!(again.id, made[3].id);
    proxy.clear();
    let listed = p.list("web-").await.unwrap();
    assert_eq!(ids(&listed), ids(&made), "exactly the prefix's instances");
    assert!(
        proxy.count("DescribeInstances") >= 2,
        "{:?}",
        proxy.actions()
    );
    let one = listed.iter().find(|i| i.id == made[0].id).unwrap();
    assert_eq!(one.name, "web-0");
    assert_eq!(one.state, State::Running);
    assert!(one.private_address.is_some());
    let tags = tags_of(&sdk, &made[0].id).await;
    assert_eq!(tags.get("Name").map(String::as_str), Some("web-0"));
    assert_eq!(tags.get("team").map(String::as_str), Some("ops"));
    p.terminate(&made[0].id).await.unwrap();
    p.terminate(&made[0].id).await.unwrap();
    let listed = p.list("web-").await.unwrap();
    assert_eq!(listed.len(), 6);
    assert!(listed.iter().all(|i| i.id != made[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_load_is_one_batched_call_with_averages_and_none_without_data() {
    let (_moto, proxy, p, sdk) = aws().await;
    let a = p.create("web-a", "web-a").await.unwrap();
    let b = p.create("web-b", "web-b").await.unwrap();
    let c = p.create("web-c", "web-c").await.unwrap();
    put_cpu(&sdk, &a.id, &[(120, 20.0), (60, 40.0)]).await;
    put_cpu(&sdk, &b.id, &[(30, 95.0)]).await;
    proxy.clear();
    let ids = vec![a.id.clone(), b.id.clone(), c.id.clone()];
    let loads = p.load(&ids, Duration::from_secs(300)).await.unwrap();
    assert_eq!(loads, [Some(30.0), Some(95.0), None]);
    assert_eq!(proxy.actions(), ["GetMetricData"]);
}

/// An `elb` balancer for target group `arn`, on port 8080.
fn elb_for(sdk: &aws_config::SdkConfig, arn: &str) -> ElbBalancer {
    ElbBalancer::with_sdk_config(
        sdk,
        ElbConfig {
            target_group_arn: arn.to_owned(),
            port: Some(8080),
            region: None,
            endpoint_url: None,
        },
        quick_retry(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elb_registers_and_deregisters_targets() {
    let (_moto, _proxy, p, sdk) = aws().await;
    let arn = crate::scale::target_group(&sdk).await;
    let elb = elb_for(&sdk, &arn);
    let i = p.create("web-a", "web-a").await.unwrap();
    elb.register(&i).await.unwrap();
    assert_eq!(
        crate::scale::targets(&sdk, &arn).await,
        std::slice::from_ref(&i.id)
    );
    elb.deregister(&i).await.unwrap();
    assert!(crate::scale::targets(&sdk, &arn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elb_drain_reads_the_deregistration_delay_and_deregisters() {
    let (_moto, proxy, p, sdk) = aws().await;
    let arn = crate::scale::target_group(&sdk).await;
    aws_sdk_elasticloadbalancingv2::Client::new(&sdk)
        .modify_target_group_attributes()
        .target_group_arn(&arn)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value("7")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let elb = elb_for(&sdk, &arn);
    assert_eq!(
        elb.deregistration_delay().await.unwrap(),
        Duration::from_secs(7)
    );
    let i = p.create("web-a", "web-a").await.unwrap();
    elb.register(&i).await.unwrap();
    proxy.clear();
    let started = std::time::Instant::now();
    elb.drain(&i).await.unwrap();
    assert!(crate::scale::targets(&sdk, &arn).await.is_empty());
    // moto drops a deregistered target at once (no `draining` state): the drain ends without waiting the delay.
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let actions = proxy.actions();
    assert_eq!(
        &actions[..2],
        ["DescribeTargetGroupAttributes", "DeregisterTargets"],
        "{actions:?}"
    );
    assert!(
        actions.contains(&"DescribeTargetHealth".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_faults_are_retried_then_typed_and_leave_nothing_half_done() {
    let (_moto, proxy, p, sdk) = aws().await;
    // moto loads each backend on its first call, slowly: warm it up before timing anything.
    assert!(p.list("web-").await.unwrap().is_empty());
    proxy.clear();
    // Throttling and 5xx, then success: retried.
    proxy.inject(
        "DescribeInstances",
        Fault::Error(503, "RequestLimitExceeded"),
        1,
    );
    proxy.inject("DescribeInstances", Fault::Error(500, "InternalError"), 1);
    assert!(p.list("web-").await.unwrap().is_empty());
    assert_eq!(proxy.count("DescribeInstances"), 3);
    // A hang: the attempt times out and the next one succeeds.
    let impatient = AwsProvider::with_sdk_config(
        &sdk,
        aws_config(),
        Retry {
            timeout: Duration::from_secs(2),
            ..quick_retry()
        },
    );
    proxy.inject("DescribeInstances", Fault::Hang(Duration::from_secs(6)), 1);
    assert!(impatient.list("web-").await.unwrap().is_empty());
    // Always throttled: the caller sees a typed transient error with the code, after 3 attempts.
    proxy.clear();
    proxy.inject("DescribeInstances", Fault::Error(400, "Throttling"), 3);
    let e = p.list("web-").await.unwrap_err();
    assert!(
        matches!(&e, CloudError::Transient { attempts: 3, message, .. } if message.starts_with("Throttling")),
        "{e}"
    );
    assert_eq!(proxy.count("DescribeInstances"), 3);
    // Permanent: not retried.
    proxy.clear();
    proxy.inject(
        "DescribeInstances",
        Fault::Error(403, "UnauthorizedOperation"),
        1,
    );
    let e = p.list("web-").await.unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("UnauthorizedOperation"),
        "{e}"
    );
    assert_eq!(proxy.count("DescribeInstances"), 1);
    // RunInstances happens but its answer is lost: the retry finds it instead of creating a second.
    proxy.inject("RunInstances", Fault::Lost(500), 1);
    let made = p.create("web-x", "web-x").await.unwrap();
    let listed = p.list("web-").await.unwrap();
    assert_eq!(
        ids(&listed),
        std::slice::from_ref(&made.id),
        "exactly one instance"
    );
    assert_eq!(proxy.count("RunInstances"), 1);
    // A create that never gets through: a typed error and no instance.
    proxy.inject("RunInstances", Fault::Error(503, "Unavailable"), 3);
    let e = p.create("web-y", "web-y").await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(p.list("web-").await.unwrap().len(), 1);
    // CloudWatch throttling is retried too.
    proxy.inject("GetMetricData", Fault::Error(400, "Throttling"), 1);
    assert_eq!(
        p.load(std::slice::from_ref(&made.id), Duration::from_secs(300))
            .await
            .unwrap(),
        [None]
    );
}

/// Kills the process groups of the instances on drop (a failed test leaves no process behind).
struct Reaper(Vec<i64>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_processes_are_readopted_and_their_cpu_measured() {
    let dir = tempfile::tempdir().unwrap();
    let store = tend::store::Store::open(&dir.path().join("tend.db")).unwrap();
    let config = LocalConfig {
        command:
            "case {name} in *busy*) exec sh -c 'while :; do :; done';; *) exec sleep 600;; esac"
                .into(),
        base_port: 9300,
        grace: Duration::from_secs(2),
        workdir: None,
        log_dir: None,
    };
    let p = LocalProvider::new(config.clone(), store.clone())
        .await
        .unwrap();
    let mut made = Vec::new();
    for name in ["t-busy-1", "t-idle-2", "t-idle-3"] {
        made.push(p.create(name, name).await.unwrap());
    }
    let _reaper = Reaper(
        made.iter()
            .map(|i| i.id.trim_start_matches("local-").parse().unwrap())
            .collect(),
    );
    assert_eq!(
        made.iter().map(|i| i.port.unwrap()).collect::<Vec<_>>(),
        [9300, 9301, 9302]
    );
    drop(p);
    // A new provider on the same store: the three are re-adopted.
    let p = LocalProvider::new(config, store).await.unwrap();
    let listed = p.list("t-").await.unwrap();
    assert_eq!(ids(&listed), ids(&made));
    let again = p.create("t-idle-2", "t-idle-2").await.unwrap();
    assert_eq!(again.id, made[1].id, "same token: no second process");
    // Two cores are shared with the other tests, so the busy loop gets "a core" only when the machine lets it.
    // What must hold whatever the load: the reading agrees with the kernel's own count of the process's CPU
    // time over the same window, the busy one reads clearly busy, and the idle ones read near 0.
    let order = ids(&made);
    let busy_pid: u32 = made[0].id.trim_start_matches("local-").parse().unwrap();
    let ticks = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0 // utime + stime, USER_HZ = 100
    };
    let (cpu0, t0) = (ticks(busy_pid), std::time::Instant::now());
    let loads = p.load(&order, Duration::from_secs(3)).await.unwrap();
    let truth = 100.0 * (ticks(busy_pid) - cpu0) / t0.elapsed().as_secs_f64();
    let of = |id: &str| loads[order.iter().position(|x| x == id).unwrap()].unwrap();
    let (busy, idle) = (of(&made[0].id), of(&made[1].id).max(of(&made[2].id)));
    assert!(idle < 5.0, "idle process read {idle:.1}%");
    assert!(
        (busy - truth).abs() < 15.0,
        "busy loop read {busy:.1}% while the kernel counted {truth:.1}%"
    );
    assert!(
        busy > 30.0,
        "busy loop read only {busy:.1}% (kernel: {truth:.1}%)"
    );
    for i in &made {
        p.terminate(&i.id).await.unwrap();
    }
    assert!(p.list("t-").await.unwrap().is_empty());
    for i in &made {
        let pid = i.id.trim_start_matches("local-");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "{pid} still runs: {stat}"
        );
    }
}
