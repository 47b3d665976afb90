//! The scaler's block on the status page and `GET /api/fleet`: the latest cycle's fleet, median, prediction and
//! decision.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use super::cycle::CycleReport;
use super::report::{address, decision_line, load_text, outcome_text, pct};
use crate::web::page::escape;

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
         <p>Last decision ({}): <strong>{}</strong>{}: {}. Outcome: {}.</p>\
         <table><tr><th>id</th><th>name</th><th>state</th><th>address</th><th>load</th></tr>{rows}</table></section>",
        a.total,
        pct(a.median),
        pct(a.predicted_after_removal),
        crate::core::time::rfc3339(r.at),
        escape(&decision_line(&r.decision)),
        if r.dry_run { " (dry run)" } else { "" },
        escape(r.decision.reason()),
        escape(&outcome_text(r)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_section_says_when_nothing_ran() {
        assert!(status_html(None).contains("No scaling cycle"));
        assert_eq!(fleet_json(None), serde_json::json!({ "cycle": null }));
    }
}
