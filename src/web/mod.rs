//! The web server: `/healthz`, `/metrics`, the status page at `/`, and whatever routes the parts add (the JSON
//! API, the deploy webhook).
//!
//! The web module knows no part: each part contributes a [`Section`] of the status page, an axum [`Router`]
//! of its own, and perhaps a [`Lane`] of the page's "last 24 hours" chart, where the lanes share one time axis. Binding happens before the daemon starts its loops, so a port in use is an error at
//! start, not a log line later.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::core::Invalid;
use crate::metrics::Metrics;

pub mod chart;
pub mod page;

use chart::TimeAxis;

/// `[web]`: the status page, JSON API, `/metrics` and `/hooks/deploy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address to listen on. The default serves this machine only; write `0.0.0.0:8080` to expose it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Set to false to run without the web server.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_true() -> bool {
    true
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: default_listen(),
            enabled: true,
        }
    }
}

impl WebConfig {
    /// Pure checks (none beyond parsing today; kept for symmetry with the other sections).
    pub fn validate(&self) -> Vec<Invalid> {
        vec![]
    }
}

/// A part's block on the status page.
pub trait Section: Send + Sync {
    /// Renders the block's HTML (already escaped).
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>>;
}

/// A part's rows in the page's "last 24 hours" chart, drawn on the axis all lanes share.
pub trait Lane: Send + Sync {
    /// Draws the lane on `axis`, or `None` when it has nothing in the last 24 hours.
    fn draw<'a>(
        &'a self,
        axis: &'a TimeAxis,
    ) -> Pin<Box<dyn Future<Output = Option<Drawn>> + Send + 'a>>;
}

/// A drawn lane: SVG elements from y = 0 to `height`, between the axis' left and right edges.
pub struct Drawn {
    /// Its name, written left of it ("fleet").
    pub name: String,
    /// Its height in pixels.
    pub height: f64,
    /// The SVG elements.
    pub svg: String,
    /// A line of HTML under the chart saying what the marks mean.
    pub legend: String,
}

/// Why the web server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another tend running? change [web] listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("web server failed: {0}")]
    Serve(#[source] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    sections: Arc<Vec<Arc<dyn Section>>>,
    lanes: Arc<Vec<Arc<dyn Lane>>>,
    title: Arc<str>,
}

/// The web server being assembled.
pub struct Web {
    config: WebConfig,
    metrics: Metrics,
    sections: Vec<Arc<dyn Section>>,
    lanes: Vec<Arc<dyn Lane>>,
    routes: Router,
    title: String,
}

/// A web server whose socket is bound; [`BoundWeb::run`] serves it.
pub struct BoundWeb {
    listener: tokio::net::TcpListener,
    app: Router,
}

impl Web {
    /// A server with the built-in routes; registers build info and uptime in `metrics`.
    pub fn new(config: WebConfig, metrics: Metrics) -> Web {
        let started = Instant::now();
        metrics
            .gauge(
                "tend_build_info",
                "tend's version; the value is always 1.",
                &[("version", env!("CARGO_PKG_VERSION"))],
            )
            .set(1.0);
        metrics.gauge_fn(
            "tend_uptime_seconds",
            "Seconds since this tend process started.",
            move || vec![(vec![], started.elapsed().as_secs_f64())],
        );
        Web {
            config,
            metrics,
            sections: Vec::new(),
            lanes: Vec::new(),
            routes: Router::new(),
            title: "tend".into(),
        }
    }

    /// Adds a block to the status page, in order.
    pub fn section(mut self, section: Arc<dyn Section>) -> Web {
        self.sections.push(section);
        self
    }

    /// Adds a lane to the "last 24 hours" chart, in order.
    pub fn lane(mut self, lane: Arc<dyn Lane>) -> Web {
        self.lanes.push(lane);
        self
    }

    /// Adds a part's own routes (API, hooks).
    pub fn routes(mut self, routes: Router) -> Web {
        self.routes = self.routes.merge(routes);
        self
    }

    /// The status page's title.
    pub fn title(mut self, title: impl Into<String>) -> Web {
        self.title = title.into();
        self
    }

    /// Binds the listen address.
    pub async fn bind(self) -> Result<BoundWeb, WebError> {
        let addr = self.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WebError::Bind { addr, source })?;
        let state = AppState {
            metrics: self.metrics,
            sections: Arc::new(self.sections),
            lanes: Arc::new(self.lanes),
            title: self.title.into(),
        };
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/", get(index))
            .with_state(state)
            .merge(self.routes);
        Ok(BoundWeb { listener, app })
    }
}

impl BoundWeb {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WebError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(WebError::Serve)
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn index(State(state): State<AppState>) -> Html<String> {
    let mut body = timeline(&state.lanes).await;
    for section in state.sections.iter() {
        body.push_str(&section.render().await);
    }
    Html(page::layout(&state.title, &body))
}

/// Width of the "last 24 hours" chart and of its lane names.
const TIMELINE: (f64, f64) = (1100.0, 70.0);

/// The "last 24 hours" block: every lane with something to show, stacked on one time axis.
async fn timeline(lanes: &[Arc<dyn Lane>]) -> String {
    use std::fmt::Write as _;
    let (width, names) = TIMELINE;
    let now = crate::core::time::millis(std::time::SystemTime::now());
    let axis = TimeAxis::last_day(now, names, width - names - 40.0);
    let mut drawn = Vec::new();
    for lane in lanes {
        if let Some(d) = lane.draw(&axis).await {
            drawn.push(d);
        }
    }
    if drawn.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    let mut legend = String::new();
    let mut y = 4.0;
    for d in &drawn {
        let _ = write!(
            rows,
            "<g class=\"lane\" data-lane=\"{name}\" transform=\"translate(0 {y})\">\
             <text x=\"0\" y=\"{mid:.0}\" font-size=\"12\" fill=\"#5f6368\">{name}</text>{svg}</g>",
            name = page::escape(&d.name),
            mid = d.height / 2.0 + 4.0,
            svg = d.svg,
        );
        let _ = write!(legend, "<p class=\"muted legend\">{}</p>", d.legend);
        y += d.height + 10.0;
    }
    let mut body = String::new();
    for (x, label) in axis.ticks(3 * 3_600_000) {
        let _ = write!(
            body,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{y}\" stroke=\"#eef0f3\"/>\
             <text x=\"{x:.1}\" y=\"{ty}\" font-size=\"11\" fill=\"#80868b\" text-anchor=\"middle\">{label}</text>",
            ty = y + 12.0,
        );
    }
    body.push_str(&rows);
    format!(
        "<section id=\"timeline\"><h2>Last 24 hours <span class=\"muted\">(UTC)</span></h2>{}{legend}</section>",
        chart::svg("timeline", width, y + 18.0, "The last 24 hours", &body)
    )
}
