//! What `tend fleet`, `tend scale --once` and the status page show: pure renderers of the fleet and a cycle.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::cycle::CycleReport;
use super::policy::Decision;
use crate::cloud::Instance;

fn age(launched: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(launched).unwrap_or_default().as_secs();
    crate::core::duration::seconds(Duration::from_secs(secs))
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn load_text(load: Option<f64>) -> String {
    load.map_or_else(|| "no data".into(), |l| format!("{l:.1}%"))
}

pub(super) fn address(i: &Instance) -> String {
    match (i.address(), i.port) {
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "-".into(),
    }
}

/// The fleet as a text table: id, name, state, age, address, load.
pub fn fleet_table(fleet: &[(Instance, Option<f64>)], now: SystemTime) -> String {
    let rows: Vec<[String; 6]> = fleet
        .iter()
        .map(|(i, load)| {
            [
                i.id.clone(),
                i.name.clone(),
                i.state.as_str().to_string(),
                age(i.launched_at, now),
                address(i),
                load_text(*load),
            ]
        })
        .collect();
    crate::core::table::render(
        ["ID", "NAME", "STATE", "AGE", "ADDRESS", "LOAD"],
        &rows,
        "(no instances)",
    )
}

/// The fleet as JSON (an array of instances, each with `load`: a number or null).
pub fn fleet_json(fleet: &[(Instance, Option<f64>)]) -> serde_json::Value {
    serde_json::Value::Array(
        fleet
            .iter()
            .map(|(i, load)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("load".into(), serde_json::json!(load));
                }
                v
            })
            .collect(),
    )
}

pub(super) fn decision_line(d: &Decision) -> String {
    match d {
        Decision::Hold { .. } => "hold".into(),
        Decision::Add { count, .. } => format!("add {count}"),
        Decision::Remove { id, .. } => format!("remove {id}"),
    }
}

pub(super) fn pct(v: Option<f64>) -> String {
    crate::core::stats::percent(v)
}

/// `tend scale --once`: the fleet, the median, the predicted load and the decision with its reason.
pub fn cycle_text(r: &CycleReport) -> String {
    let a = &r.assessment;
    let mut out = fleet_table(&r.instances, r.at);
    let _ = writeln!(
        out,
        "\ninstances  {} ({} with data, {} booting, {} missing)",
        a.total, a.with_data, a.booting, a.missing
    );
    let _ = writeln!(out, "median     {}", pct(a.median));
    let _ = writeln!(
        out,
        "predicted  {} after removing one",
        pct(a.predicted_after_removal)
    );
    if let Some(f) = a.forecast {
        let _ = writeln!(out, "forecast   {f:.2} servers of demand over the horizon");
    }
    let _ = writeln!(out, "basis      {}", a.basis);
    let _ = writeln!(
        out,
        "decision   {}{}: {}",
        decision_line(&r.decision),
        if r.dry_run { " (dry run)" } else { "" },
        r.decision.reason()
    );
    let _ = writeln!(out, "outcome    {}", outcome_text(r));
    out
}

pub(super) fn outcome_text(r: &CycleReport) -> String {
    use super::cycle::Outcome;
    match &r.outcome {
        Outcome::Nothing => "nothing to do".into(),
        Outcome::Done(ids) => format!("done: {}", ids.join(", ")),
        Outcome::DryRun(what) => format!("dry run, would {what}"),
        Outcome::Failed { error, .. } => format!("FAILED: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::State;

    fn inst(id: &str, state: State, age: u64, now: SystemTime) -> Instance {
        Instance {
            id: id.into(),
            name: format!("web-{id}"),
            state,
            launched_at: now - Duration::from_secs(age),
            private_address: Some("10.0.0.1".into()),
            public_address: None,
            port: Some(9100),
        }
    }

    #[test]
    fn table_shows_no_data_and_ages() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let t = fleet_table(
            &[
                (inst("i-1", State::Running, 3700, now), Some(42.25)),
                (inst("i-2", State::Pending, 5, now), None),
            ],
            now,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID   NAME"), "{t}");
        assert!(
            lines[1].contains("1h 1m") && lines[1].ends_with("42.2%"),
            "{t}"
        );
        assert!(
            lines[2].contains("pending") && lines[2].ends_with("no data"),
            "{t}"
        );
        assert!(lines[2].contains("10.0.0.1:9100"), "{t}");
        let j = fleet_json(&[(inst("i-2", State::Pending, 5, now), None)]);
        assert_eq!(j[0]["load"], serde_json::Value::Null);
        assert_eq!(j[0]["state"], "pending");
    }
}
