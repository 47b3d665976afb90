//! `tend simulate`: replay a load trace against tend's policy and the autoscalers users would otherwise pick.
//!
//! # The model
//! - **Demand.** The trace is a CSV with a header row; one column (default: the first) is the load. Demand in
//!   servers is value / max(value) × `--peak`: a server at 100 % carries one unit. Rows are `--step` apart and
//!   demand is constant within a row.
//! - **Time** is discrete: the tick is the step divided evenly to at most 15 s (HPA's sync period).
//! - **Instances** are billed from creation, per second with a 60 s minimum, and serve from creation + `--boot`.
//!   A terminated instance stops serving and billing at once. Every policy starts with ceil(first demand)
//!   instances created one boot before the trace starts (already serving at t = 0, their boot billed).
//! - **Load** splits evenly over the serving instances: each one's CPU is min(100, demand / serving × 100).
//! - **Metrics.** A policy sees each live instance's CPU averaged over its own window and delayed by `--lag`
//!   (`None` while the instance has no sample in that window: booting instances have no data).
//! - **Decisions** run at each policy's own interval (tend: its config; seed, AWS: 60 s; HPA: 15 s); adds create
//!   instances at once, removals terminate at once (removal victim: the newest instance with data).
//! - **Overload.** A wall-clock minute of the trace is *overloaded* when demand exceeds serving capacity at any
//!   tick in it. A policy meets the SLO when its overloaded minutes are at most `--slo` % of the trace's minutes.
//! - **Bounds.** Every policy runs between 1 and max(20, ceil(2 × peak)) instances.
//! - **Report.** `server_hours` billed; `oracle_ratio` = server_hours / oracle's; `max_overload_pct` = the largest
//!   share of demand left unserved at a tick; `mean_utilization` = served demand / billed capacity; `actions` =
//!   scaling decisions taken. SPEC elasticity metrics (Herbst et al., "Ready for Rain? A View from SPEC Research
//!   on the Future of Cloud Metrics", 2016), with the resource demand ceil(demand) and the supply the serving
//!   instances, time-averaged in percent: under/over-provisioning accuracy (mean shortfall/excess relative to the
//!   demand) and timeshare (share of time under/over-provisioned).
//! - **Oracle** (the lower bound): Σ ceil(demand) over time, no boot delay, no minimum billing.
//!
//! [`synth`] generates and transforms traces to check that a policy generalises beyond the shipped trace
//! (`cargo run --release --example generalise -- TRACE.csv` prints the comparison).

pub mod baselines;
pub mod engine;
mod error;
pub mod report;
mod spec;
pub mod sweep;
pub mod synth;
pub mod traces;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::cloud::sim::trace;
use baselines::Bounds;
use engine::{Outcome, Scenario};
pub use error::SimError;
pub use report::{EqualRisk, PolicyReport, SimReport, print_report};
pub use spec::{POLICY_NAMES, PolicySpec};
use sweep::run_one;
pub use sweep::sweep_settings;

use crate::scale::config::DEFAULT_MAX;

/// What `tend simulate` is asked: the trace, its load column, the options and where the report goes.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateRequest {
    /// CSV file with a header row; each row is one step of load.
    pub trace: PathBuf,
    /// Column holding the load (None: the first column).
    pub column: Option<String>,
    /// Everything else the simulation needs.
    pub options: SimOptions,
    /// Draw demand and each policy's serving capacity over time into this SVG file.
    pub svg: Option<PathBuf>,
    /// Draw cost against overloaded minutes (each baseline's sweep as a curve, tend as a point) into this SVG.
    pub risk_svg: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    pub json: bool,
}

/// Everything but the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Seconds between rows.
    pub step: Duration,
    /// Demand at the trace's maximum (servers).
    pub peak: f64,
    /// Boot delay.
    pub boot: Duration,
    /// Metric lag.
    pub lag: Duration,
    /// SLO: allowed overloaded minutes, percent.
    pub slo: f64,
    /// Policies to run (empty: all at their defaults).
    pub policies: Vec<PolicySpec>,
    /// Sweep the baselines' knobs.
    pub sweep: bool,
}

impl Default for SimOptions {
    /// The defaults of `tend simulate` (the issue's: 60 s rows, peak 20, boot 2 min, lag 1 min, SLO 0.1 %), every
    /// policy, no sweep.
    fn default() -> Self {
        SimOptions {
            step: Duration::from_secs(60),
            peak: 20.0,
            boot: Duration::from_secs(120),
            lag: Duration::from_secs(60),
            slo: 0.1,
            policies: Vec::new(),
            sweep: false,
        }
    }
}

/// Runs the policies on demand `values` (raw trace values, scaled to `peak` here).
pub fn run_values(
    values: &[f64],
    trace_name: &str,
    opts: &SimOptions,
) -> Result<SimReport, SimError> {
    if !(opts.peak > 0.0 && opts.peak.is_finite())
        || opts.step.is_zero()
        || !(0.0..=100.0).contains(&opts.slo)
    {
        return Err(SimError::Usage(
            "--peak must be > 0, --step > 0s, --slo within 0..=100".into(),
        ));
    }
    let max = DEFAULT_MAX.max((2.0 * opts.peak).ceil() as u32);
    let scenario = Scenario {
        demand: trace::to_demand(values, opts.peak),
        step: opts.step.as_secs_f64(),
        boot: opts.boot.as_secs_f64(),
        lag: opts.lag.as_secs_f64(),
        slo_pct: opts.slo,
        bounds: Bounds { min: 1, max },
    };
    let specs: Vec<PolicySpec> = if opts.policies.is_empty() {
        POLICY_NAMES
            .iter()
            .map(|n| PolicySpec {
                name: n.to_string(),
                knobs: Vec::new(),
            })
            .collect()
    } else {
        opts.policies.clone()
    };
    let oracle = engine::oracle(&scenario);
    let progress = std::io::stderr().is_terminal();
    let budget = scenario.slo_minutes().floor() as u64;
    // When sweeping, tend runs first: its overloaded minutes are the bar of the equal-risk comparison.
    let tend = match specs.iter().find(|s| s.name == "tend" && opts.sweep) {
        Some(spec) => run_one(&scenario, spec, None)?,
        None => None,
    };
    let tend_risk = tend.as_ref().map(|t| t.overloaded_minutes);
    let cap = 2 * budget.max(tend_risk.unwrap_or(0)) + 10;
    let mut reports = Vec::new();
    let (mut sweeps, mut equal_risk) = (Vec::new(), Vec::new());
    for spec in &specs {
        if progress {
            eprint!("\rsimulating {:<22}", spec.name);
        }
        let (setting, outcome) = if spec.name == "oracle" {
            ("-".to_string(), oracle.clone())
        } else if let (Some(t), "tend") = (&tend, spec.name.as_str()) {
            (spec.setting(), t.clone())
        } else if opts.sweep && spec.knobs.is_empty() && !sweep_settings(&spec.name).is_empty() {
            let sw = sweep::sweep(&scenario, &spec.name, cap)?;
            if let Some(risk) = tend_risk {
                equal_risk.push(EqualRisk::new(&sw, risk, tend.as_ref()));
            }
            let picked = pick(&scenario, &sw)?;
            sweeps.push(sw);
            picked
        } else {
            let outcome = run_one(&scenario, spec, None)?.unwrap_or_default();
            (spec.setting(), outcome)
        };
        reports.push(PolicyReport::new(
            &spec.name,
            setting,
            outcome,
            &oracle,
            scenario.slo_minutes(),
        ));
    }
    if progress {
        eprint!("\r{:40}\r", "");
    }
    Ok(SimReport {
        trace: trace_name.into(),
        rows: values.len(),
        step_secs: scenario.step,
        peak: opts.peak,
        boot_secs: scenario.boot,
        lag_secs: scenario.lag,
        slo_pct: opts.slo,
        slo_minutes: scenario.slo_minutes(),
        trace_minutes: scenario.minutes(),
        demand: scenario.demand,
        policies: reports,
        sweeps,
        equal_risk,
    })
}

/// The setting a sweep picks for the main table, run again in full: the cheapest that meets the SLO; when none
/// does, the one with the fewest overloaded minutes.
fn pick(s: &Scenario, sw: &sweep::Sweep) -> Result<(String, Outcome), SimError> {
    let budget = s.slo_minutes().floor() as u64;
    let setting = match sw.cheapest_within(budget) {
        Some(p) => p.setting.clone(),
        None => {
            let specs: Vec<PolicySpec> = sweep_settings(&sw.name)
                .into_iter()
                .map(|knobs| PolicySpec {
                    name: sw.name.clone(),
                    knobs,
                })
                .collect();
            let all = sweep::run_parallel(s, &specs, None)?;
            let (_, spec) = all
                .iter()
                .zip(&specs)
                .filter_map(|(o, spec)| o.as_ref().map(|o| (o, spec)))
                .min_by(|a, b| {
                    a.0.overloaded_minutes
                        .cmp(&b.0.overloaded_minutes)
                        .then(a.0.server_hours.total_cmp(&b.0.server_hours))
                })
                .ok_or_else(|| SimError::Usage(format!("no setting to sweep for {}", sw.name)))?;
            spec.setting()
        }
    };
    let spec = PolicySpec::parse(&format!("{}:{setting}", sw.name))?;
    let outcome = run_one(s, &spec, None)?.unwrap_or_default();
    Ok((setting, outcome))
}

/// `tend simulate`: loads the trace, runs, writes the table (or JSON) to `out` and the SVG if asked.
pub fn run(request: &SimulateRequest, out: &mut dyn std::io::Write) -> Result<SimReport, SimError> {
    let values = trace::load_trace(&request.trace, request.column.as_deref())?;
    let report = run_values(
        &values,
        &request.trace.display().to_string(),
        &request.options,
    )?;
    print_report(&report, request.json, out)?;
    if let Some(path) = &request.svg {
        report::write_svg(&report, path)?;
    }
    if let Some(path) = &request.risk_svg {
        report::write_risk_svg(&report, path)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
