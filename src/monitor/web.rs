//! The monitor's block on the status page, its own paged list (`/monitors?page=2`), its JSON API
//! (`GET /api/monitors?page=1&per_page=100&state=down`) and its badges (`/badge/{target}.svg`,
//! `/badge/{target}/uptime-30d.svg`). All read the live view, never the store: targets that are down come
//! first and the rest is paged server-side, so the page stays fast with ten thousand targets. Each row draws
//! its response time over 24 hours stacked by phase and its uptime over 30 days, as inline SVG.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::check::Phase;
use super::series::{DAY_MS, DAYS, HOUR_MS, HOURS, Series};
use super::view::{SharedView, TargetView, View};
use crate::core::time::{from_millis, millis, rfc3339};
use crate::web::Section;
use crate::web::chart::{self, Layer};
use crate::web::page::{escape, layout};

/// Rows per page of the status page and of `/monitors`.
pub const PAGE_ROWS: usize = 50;

/// How long a badge may be cached.
const BADGE_CACHE: &str = "max-age=30, must-revalidate";

/// The colour of each phase in the charts.
const PHASE_COLORS: [&str; 5] = ["#a142f4", "#f9ab00", "#12b5cb", "#1a73e8", "#34a853"];

/// The status page block: the first page of targets.
pub struct MonitorSection(pub SharedView);

impl Section for MonitorSection {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let view = self.0.read().unwrap_or_else(|p| p.into_inner());
            section(&view, 1, SystemTime::now())
        })
    }
}

/// The monitor block with page `page` of the targets (down first).
pub fn section(view: &View, page: usize, now: SystemTime) -> String {
    let count = |s: &str| view.targets.iter().filter(|t| t.state == s).count();
    let (up, down, unknown) = (count("up"), count("down"), count("unknown"));
    let quiet = view.targets.iter().filter(|t| t.quiet.is_some()).count();
    let mut html = String::new();
    let _ = write!(
        html,
        "<section id=\"monitors\"><h2>Monitors</h2><p><span class=\"up\">{up} up</span> · \
         <span class=\"down\">{down} down</span> · <span class=\"unknown\">{unknown} unknown</span>{} \
         <span class=\"muted\">(schedule lag p99 {:.0} ms)</span></p>",
        if quiet > 0 {
            format!(" · <span class=\"quiet\">{quiet} in quiet time</span>")
        } else {
            String::new()
        },
        view.lag.1 * 1000.0
    );
    quiet_block(&mut html, view);
    let mut legend = String::from("<span class=\"muted\">24 h by phase:</span>");
    for p in Phase::ALL {
        let _ = write!(
            legend,
            " <span class=\"swatch\" style=\"background:{}\"></span>{}",
            PHASE_COLORS[p as usize],
            p.as_str()
        );
    }
    let _ = write!(
        html,
        "<p class=\"legend\">{legend}</p><table><thead><tr><th>Target</th><th>State</th><th>Since</th>\
         <th>Last check</th><th>Response</th><th>24 h by phase</th><th>30 days</th>\
         <th>Uptime 24h / 7d / 30d</th></tr></thead><tbody>"
    );
    let rows: Vec<&TargetView> = view
        .targets
        .iter()
        .filter(|t| t.state == "down")
        .chain(view.targets.iter().filter(|t| t.state != "down"))
        .collect();
    let pages = rows.len().div_ceil(PAGE_ROWS).max(1);
    let page = page.clamp(1, pages);
    let now_ms = millis(now);
    for t in rows.iter().skip((page - 1) * PAGE_ROWS).take(PAGE_ROWS) {
        row(&mut html, t, now_ms);
    }
    html.push_str("</tbody></table>");
    if pages > 1 {
        let link = |p: usize, text: &str| format!("<a href=\"/monitors?page={p}\">{text}</a>");
        let _ = write!(
            html,
            "<p class=\"pager\">Page {page} of {pages} ({} targets){}{} · <a href=\"/api/monitors\">JSON</a></p>",
            rows.len(),
            if page > 1 {
                format!(" · {}", link(page - 1, "previous"))
            } else {
                String::new()
            },
            if page < pages {
                format!(" · {}", link(page + 1, "next"))
            } else {
                String::new()
            },
        );
    }
    html.push_str("</section>");
    html
}

/// The maintenance windows and silences, when there are any.
fn quiet_block(html: &mut String, view: &View) {
    if view.windows.is_empty() && view.silences.is_empty() {
        return;
    }
    html.push_str("<div id=\"quiet\"><h3>Maintenance and silences</h3><ul>");
    for w in &view.windows {
        let _ = write!(
            html,
            "<li class=\"window\"><strong>{}</strong> ({}): {}; <em>{}</em>{}</li>",
            escape(&w.name),
            escape(&w.targets.join(", ")),
            escape(&w.schedule),
            escape(&w.status),
            if w.reason.is_empty() {
                String::new()
            } else {
                format!(" · {}", escape(&w.reason))
            },
        );
    }
    for s in &view.silences {
        let _ = write!(
            html,
            "<li class=\"silence\"><strong>{}</strong> silenced until {} by {}{}</li>",
            escape(&s.target),
            escape(&s.until),
            escape(&s.by),
            if s.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&s.reason))
            },
        );
    }
    html.push_str("</ul></div>");
}

fn row(html: &mut String, t: &TargetView, now_ms: i64) {
    let pct = |u: Option<f64>| u.map_or("–".to_string(), |u| format!("{u:.2}%"));
    let mut state = format!("<td class=\"{s}\">{s}", s = t.state);
    if let Some(q) = &t.quiet {
        let _ = write!(
            state,
            " <span class=\"quiet\" title=\"{}\">quiet until {}</span>",
            escape(&q.why),
            escape(&rfc3339(q.until))
        );
    }
    if t.alert_held {
        state.push_str(" <span class=\"quiet\">alert held</span>");
    }
    if t.state != "unknown" && !t.seen_from.is_empty() {
        let _ = write!(
            state,
            " <span class=\"from\" title=\"checked by {}\">from {}</span>",
            escape(t.checked_by.as_deref().unwrap_or("–")),
            escape(&and_list(&t.seen_from))
        );
    }
    state.push_str("</td>");
    let response = match &t.phases {
        Some(p) => {
            let parts: Vec<String> = Phase::ALL
                .iter()
                .map(|ph| format!("{} {}", ph.as_str(), ms(p.get(*ph).as_secs_f64() * 1e3)))
                .collect();
            format!(
                "<td class=\"nowrap\" title=\"{}\">{}</td>",
                parts.join(" · "),
                ms(p.total().as_secs_f64() * 1e3)
            )
        }
        None => "<td>–</td>".into(),
    };
    let _ = write!(
        html,
        "<tr><td title=\"{what}\">{name}</td>{state}<td>{since}</td><td>{reason}</td>{response}\
         <td>{phases}</td><td>{days}</td><td class=\"nowrap\">{u0} / {u1} / {u2}</td></tr>",
        what = escape(&t.what),
        name = escape(&t.name),
        since = escape(t.since.as_deref().unwrap_or("–")),
        reason = escape(&t.reason),
        phases = phase_chart(&t.series, now_ms),
        days = uptime_bar(&t.series, now_ms),
        u0 = pct(t.uptime[0]),
        u1 = pct(t.uptime[1]),
        u2 = pct(t.uptime[2]),
    );
}

/// "tend-a", "tend-a and tend-c", "tend-a, tend-b and tend-c".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// "0.42 ms", "12.3 ms", "850 ms".
fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// The mean time of each phase per hour over the last 24 hours, stacked.
pub fn phase_chart(series: &Series, now_ms: i64) -> String {
    if series.hours.is_empty() {
        return "–".into();
    }
    let (w, h) = (144.0, 30.0);
    let last = now_ms.div_euclid(HOUR_MS);
    let first = last - HOURS as i64 + 1;
    let mut values = [(); 5].map(|_| vec![0.0; HOURS]);
    let mut max: f64 = 0.0;
    for b in series
        .hours
        .iter()
        .filter(|b| (first..=last).contains(&b.hour))
    {
        let i = (b.hour - first) as usize;
        let means = b.means_ms();
        for (p, m) in means.iter().enumerate() {
            values[p][i] = *m;
        }
        max = max.max(means.iter().sum());
    }
    let layers: Vec<Layer> = Phase::ALL
        .iter()
        .zip(values)
        .map(|(p, values)| Layer {
            name: p.as_str(),
            color: PHASE_COLORS[*p as usize],
            values,
        })
        .collect();
    chart::svg(
        "chart phases",
        w,
        h,
        &format!(
            "Response time by phase, hourly means over 24 h (peak {})",
            ms(max)
        ),
        &chart::stacked_bars(HOURS, w, &layers, h, max),
    )
}

/// The share of good checks over the 30 UTC days kept (today included), in percent; live, from the series.
pub fn uptime_30d(series: &Series) -> Option<f64> {
    let (checks, ups) = series.days.iter().fold((0u64, 0u64), |(c, u), d| {
        (c + u64::from(d.checks), u + u64::from(d.ups))
    });
    (checks > 0).then(|| 100.0 * ups as f64 / checks as f64)
}

/// Uptime per UTC day over the last 30 days, one cell per day.
pub fn uptime_bar(series: &Series, now_ms: i64) -> String {
    if series.days.is_empty() {
        return "–".into();
    }
    let today = now_ms.div_euclid(DAY_MS);
    let cells: Vec<(String, Option<f64>)> = (0..DAYS as i64)
        .map(|i| {
            let day = today - DAYS as i64 + 1 + i;
            let date: String = rfc3339(from_millis(day * DAY_MS))
                .chars()
                .take(10)
                .collect();
            match series.days.iter().find(|d| d.day == day) {
                Some(d) if d.checks > 0 => {
                    let share = f64::from(d.ups) / f64::from(d.checks);
                    (
                        format!("{date}: {:.2}% of {} checks", share * 100.0, d.checks),
                        Some(share),
                    )
                }
                _ => (format!("{date}: no checks"), None),
            }
        })
        .collect();
    chart::svg(
        "chart uptime",
        149.0,
        16.0,
        "Uptime per day over 30 days",
        &chart::cells(&cells, 4.0, 1.0, 16.0),
    )
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
    per_page: Option<usize>,
    state: Option<String>,
}

/// `/api/monitors`, `/monitors` and the badges.
pub fn routes(view: SharedView) -> Router {
    Router::new()
        .route("/api/monitors", get(list))
        .route("/monitors", get(monitors_page))
        .route("/badge/{file}", get(state_badge))
        .route("/badge/{target}/{kind}", get(uptime_badge))
        .with_state(view)
}

/// `/api/monitors`: `{ total, page, per_page, targets: [...] }`, optionally `?state=down`.
async fn list(
    State(view): State<SharedView>,
    Query(p): Query<PageQuery>,
) -> Json<serde_json::Value> {
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
        "windows": view.windows,
        "silences": view.silences,
    }))
}

/// `/monitors?page=N`: a page of the monitor list on its own.
async fn monitors_page(State(view): State<SharedView>, Query(p): Query<PageQuery>) -> Html<String> {
    let view = view.read().unwrap_or_else(|p| p.into_inner());
    let body = section(&view, p.page.unwrap_or(1), SystemTime::now());
    Html(layout("tend monitors", &body))
}

fn svg_response(svg: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, BADGE_CACHE),
        ],
        svg,
    )
        .into_response()
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("no monitor target named {name:?}\n"),
    )
        .into_response()
}

/// `/badge/{target}.svg`: up, down or unknown, coloured like shields.io's.
async fn state_badge(State(view): State<SharedView>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return not_found(&file);
    };
    let view = view.read().unwrap_or_else(|p| p.into_inner());
    let Some(t) = view.targets.iter().find(|t| t.name == name) else {
        return not_found(name);
    };
    let color = match t.state {
        "up" => "#4c1",
        "down" => "#e05d44",
        _ => "#9f9f9f",
    };
    svg_response(chart::badge(&t.name, t.state, color))
}

/// `/badge/{target}/uptime-30d.svg`: the uptime over 30 days.
async fn uptime_badge(
    State(view): State<SharedView>,
    Path((name, kind)): Path<(String, String)>,
) -> Response {
    if kind != "uptime-30d.svg" {
        return not_found(&format!("{name}/{kind}"));
    }
    let view = view.read().unwrap_or_else(|p| p.into_inner());
    let Some(t) = view.targets.iter().find(|t| t.name == name) else {
        return not_found(&name);
    };
    let svg = match uptime_30d(&t.series) {
        Some(u) => chart::badge("uptime 30d", &format!("{u:.2}%"), chart::uptime_color(u)),
        None => chart::badge("uptime 30d", "unknown", "#9f9f9f"),
    };
    svg_response(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::config::{MonitorConfig, TargetConfig};
    use crate::monitor::{Phases, view::View};
    use std::time::Duration;

    fn view(n: usize) -> View {
        let mut config = MonitorConfig::default();
        for i in 0..n {
            let mut t = TargetConfig::new(format!("t{i:05}"));
            t.url = Some(format!("http://127.0.0.1/{i}"));
            config.target.push(t);
        }
        let mut v = View::new(&config);
        let now = millis(SystemTime::now());
        let mut p = Phases::default();
        p.add(Phase::Connect, Duration::from_micros(300));
        p.add(Phase::Ttfb, Duration::from_millis(2));
        for (i, t) in v.targets.iter_mut().enumerate() {
            t.state = if i % 100 == 7 { "down" } else { "up" };
            t.phases = Some(p);
            for h in 0..24 {
                t.series.record(now - h * HOUR_MS, i % 100 != 7, &p);
            }
            for d in 1..30 {
                t.series.record(now - d * DAY_MS, true, &p);
            }
        }
        v
    }

    #[test]
    fn places_read_as_a_list() {
        let l = |v: &[&str]| and_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(l(&[]), "");
        assert_eq!(l(&["tend-a"]), "tend-a");
        assert_eq!(l(&["tend-a", "tend-c"]), "tend-a and tend-c");
        assert_eq!(l(&["a", "b (z)", "c"]), "a, b (z) and c");
    }

    #[test]
    fn down_first_paged_with_charts() {
        let v = view(300);
        let html = section(&v, 1, SystemTime::now());
        assert!(html.contains("3 down"));
        let first_row = html.find("<tr><td title").expect("a row");
        assert!(html[first_row..].starts_with("<tr><td title=\"http://127.0.0.1/7\">t00007<"));
        assert_eq!(html.matches("<tr><td title").count(), PAGE_ROWS);
        assert_eq!(html.matches("class=\"chart phases\"").count(), PAGE_ROWS);
        assert_eq!(html.matches("class=\"chart uptime\"").count(), PAGE_ROWS);
        assert!(html.contains("Page 1 of 6"));
        assert!(html.contains("/monitors?page=2"));
        let last = section(&v, 99, SystemTime::now());
        assert!(last.contains("Page 6 of 6") && last.contains("/monitors?page=5"));
    }
}
