//! The scaler's block on the status page and `GET /api/fleet` (the latest cycle's fleet, median, prediction and
//! decision), and its lane of the "last 24 hours" chart: the fleet's size and median load, each decision marked.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use super::cycle::CycleReport;
use super::report::{address, decision_line, load_text, outcome_text, pct};
use super::store;
use crate::store::Store;
use crate::web::chart::{self, TimeAxis};
use crate::web::page::escape;
use crate::web::{Drawn, Lane};

/// The latest cycle, shared with the status page.
#[derive(Debug, Clone, Default)]
pub struct FleetStatus(Arc<Mutex<Option<CycleReport>>>);

impl FleetStatus {
    /// The latest cycle, if any ran.
    pub fn latest(&self) -> Option<CycleReport> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn set(&self, report: CycleReport) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }
}

impl crate::web::Section for FleetStatus {
    fn render(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
        Box::pin(async move { status_html(self.latest().as_ref()) })
    }
}

/// `GET /api/fleet`: the latest cycle as JSON (`{"cycle": null}` before the first).
pub fn routes(status: FleetStatus) -> axum::Router {
    axum::Router::new()
        .route("/api/fleet", axum::routing::get(fleet_api))
        .with_state(status)
}

async fn fleet_api(
    axum::extract::State(status): axum::extract::State<FleetStatus>,
) -> axum::Json<serde_json::Value> {
    axum::Json(fleet_json(status.latest().as_ref()))
}

/// The latest cycle as the API shows it: instances with their load, median, prediction, decision and outcome.
pub fn fleet_json(latest: Option<&CycleReport>) -> serde_json::Value {
    let Some(r) = latest else {
        return serde_json::json!({ "cycle": null });
    };
    let a = &r.assessment;
    serde_json::json!({
        "cycle": {
            "at": crate::core::time::rfc3339(r.at),
            "instances": super::report::fleet_json(&r.instances),
            "total": a.total,
            "median": a.median,
            "predicted_after_removal": a.predicted_after_removal,
            "decision": decision_line(&r.decision),
            "reason": r.decision.reason(),
            "outcome": outcome_text(r),
            "dry_run": r.dry_run,
        }
    })
}

/// The status page's fleet section.
pub fn status_html(latest: Option<&CycleReport>) -> String {
    let Some(r) = latest else {
        return "<section><h2>Fleet</h2><p>No scaling cycle has run yet.</p></section>".into();
    };
    let a = &r.assessment;
    let mut rows = String::new();
    for (i, load) in &r.instances {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&i.id),
            escape(&i.name),
            i.state.as_str(),
            escape(&address(i)),
            load_text(*load)
        );
    }
    format!(
        "<section><h2>Fleet</h2><p>{} instance(s), median load {}, predicted after removing one {}.</p>\
         <p>Scaling on: {}.</p>\
         <p>Last decision ({}): <strong>{}</strong>{}: {}. Outcome: {}.</p>\
         <table><tr><th>id</th><th>name</th><th>state</th><th>address</th><th>load</th></tr>{rows}</table></section>",
        a.total,
        pct(a.median),
        pct(a.predicted_after_removal),
        escape(&a.basis),
        crate::core::time::rfc3339(r.at),
        escape(&decision_line(&r.decision)),
        if r.dry_run { " (dry run)" } else { "" },
        escape(r.decision.reason()),
        escape(&outcome_text(r)),
    )
}

/// Height of the fleet lane, pixels.
const FLEET_HEIGHT: f64 = 90.0;
/// Points drawn per line at most (decisions beyond are thinned; every add and remove is still marked).
const MAX_POINTS: usize = 720;

/// The fleet over the last 24 hours, from the stored decisions.
pub struct FleetLane(pub Store);

impl Lane for FleetLane {
    fn draw<'a>(
        &'a self,
        axis: &'a TimeAxis,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Drawn>> + Send + 'a>> {
        Box::pin(async move {
            match store::since(&self.0, axis.from_ms).await {
                Ok(points) => fleet_lane(&points, axis),
                Err(error) => {
                    tracing::warn!(%error, "Cannot read the scaling decisions for the timeline");
                    None
                }
            }
        })
    }
}

/// The fleet lane: instances (blue, left scale) and median load (orange, 0–100 %), decisions marked.
pub fn fleet_lane(points: &[store::Point], axis: &TimeAxis) -> Option<Drawn> {
    if points.is_empty() {
        return None;
    }
    let h = FLEET_HEIGHT;
    let most = points.iter().map(|p| p.3).max().unwrap_or(1).max(1) as f64;
    let step = points.len().div_ceil(MAX_POINTS).max(1);
    let thinned: Vec<&store::Point> = points.iter().step_by(step).collect();
    let mut size: Vec<(f64, f64)> = Vec::new();
    for p in &thinned {
        let (x, y) = (axis.x(p.0), h - 2.0 - p.3 as f64 / most * (h - 14.0));
        if let Some(&(_, previous)) = size.last() {
            size.push((x, previous)); // a step: the size holds until the next decision
        }
        size.push((x, y));
    }
    let load: Vec<(f64, f64)> = thinned
        .iter()
        .filter_map(|p| {
            Some((
                axis.x(p.0),
                h - 2.0 - p.4?.clamp(0.0, 100.0) / 100.0 * (h - 14.0),
            ))
        })
        .collect();
    let mut svg = format!(
        "<line x1=\"{l}\" x2=\"{r}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#dde1e6\"/>\
         <text x=\"{r}\" y=\"10\" font-size=\"10\" fill=\"#80868b\" text-anchor=\"end\">top: {most} instances, 100% load</text>",
        l = axis.left,
        r = axis.left + axis.width,
        y = h - 2.0,
    );
    svg.push_str(&chart::line(&size, "#1a73e8", "instances"));
    svg.push_str(&chart::line(&load, "#e37400", "median load"));
    let mut marks = 0;
    for p in points.iter().filter(|p| p.1 != "hold") {
        let x = axis.x(p.0);
        let (shape, color) = if p.1 == "add" {
            (
                format!("{:.1},10 {:.1},2 {:.1},10", x - 4.0, x, x + 4.0),
                "#137333",
            )
        } else {
            (
                format!("{:.1},2 {:.1},10 {:.1},2", x - 4.0, x, x + 4.0),
                "#c5221f",
            )
        };
        let _ = write!(
            svg,
            "<polygon class=\"decision {action}\" points=\"{shape}\" fill=\"{color}\"><title>{} {action} {}: {}</title></polygon>",
            crate::core::time::rfc3339(crate::core::time::from_millis(p.0)),
            p.2,
            escape(&p.5),
            action = escape(&p.1),
        );
        marks += 1;
    }
    Some(Drawn {
        name: "fleet".into(),
        height: h,
        svg,
        legend: format!(
            "Fleet: instances (blue, up to {most}) and median load (orange, 0–100%) from {} cycles; \
             {marks} scaling decisions marked (green ▲ add, red ▼ remove).",
            points.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_lane_marks_each_decision() {
        let axis = TimeAxis::last_day(100_000_000, 70.0, 1000.0);
        let p = |at: i64, action: &str, n: i64| -> store::Point {
            (
                at,
                action.into(),
                1,
                n,
                Some(50.0),
                format!("{action} because"),
            )
        };
        let points = vec![
            p(20_000_000, "hold", 1),
            p(30_000_000, "add", 1),
            p(40_000_000, "hold", 2),
            p(50_000_000, "remove", 2),
            p(60_000_000, "hold", 1),
        ];
        let d = fleet_lane(&points, &axis).expect("drawn");
        assert_eq!(d.svg.matches("class=\"decision add\"").count(), 1);
        assert_eq!(d.svg.matches("class=\"decision remove\"").count(), 1);
        assert!(d.svg.contains("remove because"));
        assert!(d.legend.contains("2 scaling decisions"));
        assert!(fleet_lane(&[], &axis).is_none());
    }

    #[test]
    fn status_section_says_when_nothing_ran() {
        assert!(status_html(None).contains("No scaling cycle"));
        assert_eq!(fleet_json(None), serde_json::json!({ "cycle": null }));
    }
}
