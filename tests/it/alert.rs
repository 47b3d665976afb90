//! Alerting against real receivers: an SMTP server (aiosmtpd, plain and STARTTLS with login) and a local
//! webhook receiver. Restarts are new `Alerter`s on the same SQLite file, as a new process would be.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tend::alert::{Alert, AlertConfig, Alerter};
use tend::log::{AlertLayer, Level, LogConfig};
use tend::metrics::Metrics;
use tend::store::Store;
use tracing_subscriber::prelude::*;

use crate::support::smtp::{Options, SmtpSink};

fn config(toml_text: &str) -> AlertConfig {
    toml::from_str(toml_text).expect("alert config")
}

fn smtp_notifier(port: u16, extra: &str) -> String {
    format!(
        "[[notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"tend@example.com\"\nto = [\"ops@example.com\", \"dev@example.com\"]\ntimeout = \"5s\"\n{extra}"
    )
}

fn start(store: &Store, text: &str) -> Alerter {
    Alerter::start(&config(text), store.clone(), &Metrics::new()).expect("alerter")
}

fn undelivered_errors(store: &Store) -> Vec<(i64, Option<String>)> {
    store
        .blocking(|c| {
            let mut s = c.prepare(
                "SELECT attempts, last_error FROM deliveries WHERE delivered_at IS NULL",
            )?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .unwrap()
}

#[test]
fn an_error_arrives_as_a_mail_with_the_lines_before_it() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tend.db")).unwrap();
    let alerter = start(
        &store,
        &format!("group_wait = \"200ms\"\n{}", smtp_notifier(sink.port, "")),
    );
    let log = LogConfig {
        context_lines: 5,
        ..LogConfig::default()
    };
    let subscriber = tracing_subscriber::registry().with(AlertLayer::new(alerter.clone(), &log));
    tracing::subscriber::with_default(subscriber, || {
        tend::log::debug!("step one: connecting to the database");
        tend::log::info!(user = "alice", "step two: loading the report");
        tend::log::notice!("step three");
        tend::log::error!(path = "/var/data", "Disk full while writing the report");
    });
    assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
    let mails = sink.wait_for(1);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let m = &mails[0];
    assert!(
        m.contains("Subject: ERROR: Disk full while writing the report"),
        "{m}"
    );
    assert!(
        m.contains("step one: connecting to the database"),
        "debug lines are context too: {m}"
    );
    assert!(m.contains("user=alice"), "{m}");
    assert!(m.contains("NOTICE  step three"), "{m}");
    assert!(
        m.contains("path=\"/var/data\"") || m.contains("path=/var/data"),
        "{m}"
    );
    assert!(m.contains("Message-ID: <tend."), "{m}");
    assert!(m.contains("Date: "), "{m}");
    assert!(
        m.contains("ops@example.com") && m.contains("dev@example.com"),
        "{m}"
    );
}

#[test]
fn starttls_with_login_delivers() {
    let sink = SmtpSink::start_with(Options {
        tls: true,
        login: Some(("tend".into(), "s3cret".into())),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tend.db")).unwrap();
    let text = format!(
        "[[notifier]]\nkind = \"smtp\"\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = {:?}\n\
         username = \"tend\"\npassword = \"s3cret\"\nfrom = \"tend@example.com\"\nto = [\"ops@example.com\"]\n",
        sink.port,
        sink.cert_pem.as_ref().unwrap()
    );
    let alerter = start(&store, &text);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(alerter.notify_now(
        Alert::new(
            tend::core::Event::TestAlert,
            "tls",
            Level::Notice,
            "Over STARTTLS",
            "hello",
        ),
        Duration::from_secs(20),
    ));
    assert_eq!(report.len(), 1);
    assert_eq!(
        report[0].1,
        tend::alert::DeliveryReport::Accepted,
        "{report:?}"
    );
    let mails = sink.wait_for(1);
    assert!(
        mails[0].contains("Subject: NOTICE: Over STARTTLS"),
        "{}",
        mails[0]
    );
}

#[test]
fn a_rejected_login_is_retried_and_reported_not_lost() {
    let sink = SmtpSink::start_with(Options {
        tls: true,
        login: Some(("tend".into(), "right".into())),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tend.db")).unwrap();
    let notifier = |password: &str| {
        format!(
            "group_wait = \"100ms\"\nretry_initial = \"200ms\"\nretry_max = \"400ms\"\n\
             [[notifier]]\nkind = \"smtp\"\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = {:?}\n\
             username = \"tend\"\npassword = \"{password}\"\nfrom = \"tend@example.com\"\nto = [\"ops@example.com\"]\n",
            sink.port,
            sink.cert_pem.as_ref().unwrap()
        )
    };
    let alerter = start(&store, &notifier("wrong"));
    alerter.send(Alert::new(
        tend::core::Event::TestAlert,
        "login",
        Level::Error,
        "Needs a login",
        "body",
    ));
    // Several attempts fail, each recorded with the server's reason.
    let errors = crate::support::wait_for("three failed attempts", Duration::from_secs(20), || {
        let rows = undelivered_errors(&store);
        (rows.len() == 1 && rows[0].0 >= 3).then_some(rows)
    });
    let reason = errors[0].1.clone().unwrap_or_default();
    assert!(
        reason.contains("535") || reason.to_lowercase().contains("auth"),
        "{reason}"
    );
    assert!(
        !reason.contains("wrong"),
        "the password must not appear in errors: {reason}"
    );
    assert!(sink.messages().is_empty());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(alerter.stop(Duration::from_millis(100)));
    // "Restart" with the right password: the kept alert goes out, once.
    let alerter = start(&store, &notifier("right"));
    assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
    let mails = sink.wait_for(1);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: ERROR: Needs a login"));
}

#[test]
fn alerts_sent_while_smtp_is_down_go_out_after_a_restart_once_each() {
    let port = crate::support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.db");
    let text = format!(
        "group_wait = \"100ms\"\nstorm_limit = 100\nretry_initial = \"100ms\"\n{}",
        smtp_notifier(port, "")
    );
    {
        let store = Store::open(&path).unwrap();
        let alerter = start(&store, &text);
        for i in 0..20 {
            alerter.send(Alert::new(
                tend::core::Event::TestAlert,
                format!("k{i}"),
                Level::Error,
                format!("alert number {i}"),
                "b",
            ));
        }
        let report = alerter.flush(Duration::from_secs(2));
        assert_eq!(
            report.undelivered, 20,
            "nothing listens, so nothing is delivered"
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(alerter.stop(Duration::from_millis(100)));
    }
    let sink = SmtpSink::start_with(Options {
        port: Some(port),
        ..Options::default()
    });
    let store = Store::open(&path).unwrap();
    let alerter = start(&store, &text);
    assert_eq!(alerter.flush(Duration::from_secs(30)).undelivered, 0);
    let mails = sink.wait_for(20);
    std::thread::sleep(Duration::from_millis(300));
    let mails_after = sink.messages();
    assert_eq!(mails_after.len(), 20, "exactly 20 mails, none twice");
    for i in 0..20 {
        let subject = format!("Subject: ERROR: alert number {i}");
        let n = mails
            .iter()
            .filter(|m| m.lines().any(|l| l.trim_end() == subject))
            .count();
        assert_eq!(n, 1, "alert {i} arrived {n} times");
    }
}

#[test]
fn a_thousand_identical_errors_make_one_mail_with_the_count() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tend.db")).unwrap();
    let alerter = start(
        &store,
        &format!("group_wait = \"3s\"\n{}", smtp_notifier(sink.port, "")),
    );
    let subscriber = tracing_subscriber::registry()
        .with(AlertLayer::new(alerter.clone(), &LogConfig::default()));
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..1000 {
            tend::log::error!(attempt = i, "Cannot reach the payment service");
        }
    });
    assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
    let mails = sink.wait_for(1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 1);
    assert!(
        mails[0].contains("Cannot reach the payment service (and 999 more like this)"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("This happened 1000 times"),
        "{}",
        mails[0]
    );
}

#[test]
fn fifty_distinct_alerts_in_a_burst_make_one_digest() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tend.db")).unwrap();
    let alerter = start(
        &store,
        &format!(
            "group_wait = \"1s\"\nstorm_limit = 10\n{}",
            smtp_notifier(sink.port, "")
        ),
    );
    for i in 0..50 {
        alerter.send(Alert::new(
            tend::core::Event::MonitorDown,
            format!("site{i}"),
            Level::Error,
            format!("site{i} is down"),
            "HTTP 503",
        ));
    }
    assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
    let mails = sink.wait_for(1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 1, "one digest");
    assert!(mails[0].contains("50 alerts at once"), "{}", mails[0]);
    for i in [0, 25, 49] {
        assert!(
            mails[0].contains(&format!("site{i} is down")),
            "{}",
            mails[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_once_gets_the_message_exactly_once() {
    use axum::{Router, extract::State, http::StatusCode, routing::post};
    #[derive(Clone, Default)]
    struct Receiver {
        calls: Arc<AtomicUsize>,
        bodies: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    }
    async fn hook(State(r): State<Receiver>, body: axum::Json<serde_json::Value>) -> StatusCode {
        r.bodies.lock().unwrap().push(body.0);
        if r.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("tend.db")).unwrap();
    let text = format!(
        "group_wait = \"100ms\"\nretry_initial = \"200ms\"\n[[notifier]]\nkind = \"webhook\"\n\
         url = \"http://{addr}/hook\"\nformat = \"slack\"\n"
    );
    let alerter = start(&store, &text);
    alerter.send(Alert::new(
        tend::core::Event::MonitorDown,
        "shop",
        Level::Error,
        "shop is down",
        "HTTP 503 from https://shop/",
    ));
    assert_eq!(
        alerter
            .flush_async(Duration::from_secs(20))
            .await
            .undelivered,
        0
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.calls.load(Ordering::SeqCst),
        2,
        "a 500, then one 200, then nothing"
    );
    let bodies = receiver.bodies.lock().unwrap().clone();
    let text = bodies[1]["text"].as_str().unwrap();
    assert!(text.starts_with("*ERROR: shop is down*"), "{text}");
    assert!(text.contains("HTTP 503 from https://shop/"), "{text}");
}
