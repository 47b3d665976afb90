//! A fault-injecting HTTP proxy in front of moto: forwards AWS query-protocol requests, except those whose
//! `Action` has a fault queued, which get an error answer, a hang, or are forwarded and then answered with an
//! error (the action happened, the answer was lost). Records every request's action in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What to do to one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and AWS error code, without forwarding.
    Error(u16, &'static str),
    /// Wait this long before forwarding (the client should have given up).
    Hang(Duration),
    /// Forward (the action happens), then answer with this status and a 5xx error body.
    Lost(u16),
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Vec<(String, VecDeque<Fault>)>>,
    actions: Mutex<Vec<String>>,
}

/// The running proxy; stops on drop.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    upstream: String,
    client: reqwest::Client,
}

impl FaultProxy {
    /// A proxy on a free port forwarding to `upstream`.
    pub async fn start(upstream: &str) -> FaultProxy {
        let shared = Arc::new(Shared::default());
        let ctx = Ctx {
            shared: shared.clone(),
            upstream: upstream.to_string(),
            client: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(handle).with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { url, shared, task }
    }

    /// The next `times` requests of `action` get `fault`.
    pub fn inject(&self, action: &str, fault: Fault, times: usize) {
        let mut faults = self.shared.faults.lock().unwrap();
        let queue = std::iter::repeat_n(fault, times).collect();
        faults.push((action.to_string(), queue));
    }

    /// Every request's action, in order.
    pub fn actions(&self) -> Vec<String> {
        self.shared.actions.lock().unwrap().clone()
    }

    /// How many requests of `action` came.
    pub fn count(&self, action: &str) -> usize {
        self.actions().iter().filter(|a| *a == action).count()
    }

    /// Forgets the recorded actions.
    pub fn clear(&self) {
        self.shared.actions.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn action_of(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("?")
        .to_string()
}

fn error_body(action: &str, code: &str) -> String {
    let ec2 = matches!(
        action,
        "DescribeInstances" | "RunInstances" | "TerminateInstances"
    );
    if ec2 {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>\
             <Message>injected by the test proxy</Message></Error></Errors><RequestID>test</RequestID></Response>"
        )
    } else {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected by the test proxy\
             </Message></Error><RequestId>test</RequestId></ErrorResponse>"
        )
    }
}

fn error(status: u16, action: &str, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "text/xml")],
        error_body(action, code),
    )
        .into_response()
}

async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action = action_of(&body);
    ctx.shared.actions.lock().unwrap().push(action.clone());
    let fault = {
        let mut faults = ctx.shared.faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|(a, q)| *a == action && !q.is_empty())
            .and_then(|(_, q)| q.pop_front())
    };
    match &fault {
        Some(Fault::Error(status, code)) => return error(*status, &action, code),
        Some(Fault::Hang(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let url = format!(
        "{}{}",
        ctx.upstream,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = ctx.client.request(method, url).body(body);
    for (k, v) in headers.iter() {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let upstream = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    if let Some(Fault::Lost(status)) = fault {
        return error(status, &action, "InternalError");
    }
    let status = upstream.status();
    let content_type = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/xml")
        .to_string();
    let bytes = upstream.bytes().await.unwrap_or_default();
    (
        StatusCode::from_u16(status.as_u16()).unwrap(),
        [("content-type", content_type)],
        bytes,
    )
        .into_response()
}
