//! The monitor's block on the status page and its JSON API (`GET /api/monitors?page=1&per_page=100`).
//! Both read the live view; the page lists targets that are down first and pages the rest server-side, so
//! it stays fast with ten thousand targets.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::view::{SharedView, TargetView};
use crate::web::Section;
use crate::web::page::escape;

/// Rows on the status page before it links to the API.
const PAGE_ROWS: usize = 200;

/// The status page block.
pub struct MonitorSection(pub SharedView);

impl Section for MonitorSection {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let view = self.0.read().unwrap_or_else(|p| p.into_inner());
            let count = |s: &str| view.targets.iter().filter(|t| t.state == s).count();
            let (up, down, unknown) = (count("up"), count("down"), count("unknown"));
            let mut html = String::new();
            let _ = write!(
                html,
                "<section id=\"monitors\"><h2>Monitors</h2><p><span class=\"up\">{up} up</span> · \
                 <span class=\"down\">{down} down</span> · <span class=\"unknown\">{unknown} unknown</span> \
                 <span class=\"muted\">(schedule lag p99 {:.0} ms)</span></p>",
                view.lag.1 * 1000.0
            );
            html.push_str(
                "<table><thead><tr><th>Target</th><th>State</th><th>Since</th><th>Last check</th>\
                 <th>Response</th><th>Uptime 24h / 7d / 30d</th><th>Recent</th></tr></thead><tbody>",
            );
            let mut rows: Vec<&TargetView> =
                view.targets.iter().filter(|t| t.state == "down").collect();
            rows.extend(view.targets.iter().filter(|t| t.state != "down"));
            for t in rows.iter().take(PAGE_ROWS) {
                row(&mut html, t);
            }
            html.push_str("</tbody></table>");
            if rows.len() > PAGE_ROWS {
                let _ = write!(
                    html,
                    "<p class=\"muted\">{} more targets: <a href=\"/api/monitors?page=2&amp;per_page={PAGE_ROWS}\">\
                     /api/monitors</a></p>",
                    rows.len() - PAGE_ROWS
                );
            }
            html.push_str("</section>");
            html
        })
    }
}

fn row(html: &mut String, t: &TargetView) {
    let pct = |u: Option<f64>| u.map_or("–".to_string(), |u| format!("{u:.2}%"));
    let _ = write!(
        html,
        "<tr><td title=\"{what}\">{name}</td><td class=\"{state}\">{state}</td><td>{since}</td><td>{reason}</td>\
         <td>{resp}</td><td>{u0} / {u1} / {u2}</td><td>{spark}</td></tr>",
        what = escape(&t.what),
        name = escape(&t.name),
        state = t.state,
        since = escape(t.since.as_deref().unwrap_or("–")),
        reason = escape(&t.reason),
        resp = t.response_ms.map_or("–".into(), |ms| format!("{ms} ms")),
        u0 = pct(t.uptime[0]),
        u1 = pct(t.uptime[1]),
        u2 = pct(t.uptime[2]),
        spark = sparkline(&t.recent_ms),
    );
}

#[derive(Deserialize)]
struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
    state: Option<String>,
}

/// `/api/monitors`: `{ total, page, per_page, targets: [...] }`, optionally `?state=down`.
pub fn routes(view: SharedView) -> Router {
    Router::new()
        .route("/api/monitors", get(list))
        .with_state(view)
}

async fn list(State(view): State<SharedView>, Query(p): Query<Page>) -> Json<serde_json::Value> {
    let view = view.read().unwrap_or_else(|p| p.into_inner());
    let per_page = p.per_page.unwrap_or(100).clamp(1, 1000);
    let page = p.page.unwrap_or(1).max(1);
    let matching: Vec<&TargetView> = view
        .targets
        .iter()
        .filter(|t| p.state.as_deref().is_none_or(|s| t.state == s))
        .collect();
    let slice: Vec<&TargetView> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .copied()
        .collect();
    Json(serde_json::json!({
        "total": matching.len(),
        "page": page,
        "per_page": per_page,
        "targets": slice,
    }))
}

/// A small inline SVG sparkline of response times.
pub fn sparkline(values: &[u64]) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let max = values.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, h) = (120.0, 24.0);
    let step = w / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 2.0 - (*v as f64 / max) * (h - 4.0)
            )
        })
        .collect();
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" aria-label=\"response times\">\
         <polyline fill=\"none\" stroke=\"#1a73e8\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}
