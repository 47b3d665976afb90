//! The scaler's block on the status page: the latest cycle's fleet, median, prediction and decision.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_section_says_when_nothing_ran() {
        assert!(status_html(None).contains("No scaling cycle"));
    }
}
