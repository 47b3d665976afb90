//! The simulation report: a table, JSON (fields under `policies`) and an SVG chart.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::engine::Outcome;
use super::error::SimError;
use super::sweep::Sweep;

/// One baseline at tend's own risk: its cheapest swept setting whose overloaded minutes are at most tend's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EqualRisk {
    /// The baseline.
    pub name: String,
    /// tend's overloaded minutes: the bar.
    pub tend_overloaded_minutes: u64,
    /// The setting (`None`: no setting of the sweep is that safe).
    pub setting: Option<String>,
    /// Its server-hours.
    pub server_hours: Option<f64>,
    /// Its overloaded minutes.
    pub overloaded_minutes: Option<u64>,
    /// tend's server-hours over its.
    pub tend_ratio: Option<f64>,
}

impl EqualRisk {
    /// The cheapest setting of `sweep` at most as risky as tend (`risk` overloaded minutes).
    pub fn new(sweep: &Sweep, risk: u64, tend: Option<&Outcome>) -> EqualRisk {
        let p = sweep.cheapest_within(risk);
        EqualRisk {
            name: sweep.name.clone(),
            tend_overloaded_minutes: risk,
            setting: p.map(|p| p.setting.clone()),
            server_hours: p.map(|p| p.server_hours),
            overloaded_minutes: p.map(|p| p.overloaded_minutes),
            tend_ratio: p
                .zip(tend)
                .filter(|(p, _)| p.server_hours > 0.0)
                .map(|(p, t)| t.server_hours / p.server_hours),
        }
    }
}

/// One policy's result, with the field names of issue 8: its name, setting and SLO verdict, and the
/// engine's [`Outcome`] (flattened, so `server_hours`, `overloaded_minutes`, ... sit beside `name` in JSON and
/// read as `report.server_hours` through `Deref`).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// Policy name.
    pub name: String,
    /// `KNOB=VALUE,...` it ran at (`defaults`, or `-` for the oracle); replay with `--policy NAME:SETTING`.
    pub setting: String,
    /// Whether overloaded minutes stayed within the SLO.
    pub meets_slo: bool,
    /// server_hours / the oracle's.
    pub oracle_ratio: f64,
    /// What the policy did.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl std::ops::Deref for PolicyReport {
    type Target = Outcome;

    fn deref(&self) -> &Outcome {
        &self.outcome
    }
}

impl PolicyReport {
    /// Names an outcome.
    pub fn new(
        name: &str,
        setting: String,
        o: Outcome,
        oracle: &Outcome,
        slo_minutes: f64,
    ) -> Self {
        PolicyReport {
            name: name.into(),
            setting,
            meets_slo: o.overloaded_minutes as f64 <= slo_minutes,
            oracle_ratio: if oracle.server_hours > 0.0 {
                o.server_hours / oracle.server_hours
            } else {
                0.0
            },
            outcome: o,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Trace file.
    pub trace: String,
    /// Rows in the trace.
    pub rows: usize,
    /// Seconds between rows.
    pub step_secs: f64,
    /// Demand at the trace's maximum (servers).
    pub peak: f64,
    /// Boot delay (s).
    pub boot_secs: f64,
    /// Metric lag (s).
    pub lag_secs: f64,
    /// SLO (percent of minutes).
    pub slo_pct: f64,
    /// Overloaded minutes the SLO allows.
    pub slo_minutes: f64,
    /// Minutes in the trace.
    pub trace_minutes: f64,
    /// Demand per row (servers).
    #[serde(skip)]
    pub demand: Vec<f64>,
    /// One entry per policy.
    pub policies: Vec<PolicyReport>,
    /// With `--sweep`: every baseline's swept settings (cost and overloaded minutes).
    pub sweeps: Vec<Sweep>,
    /// With `--sweep`: every baseline at tend's own risk.
    pub equal_risk: Vec<EqualRisk>,
}

impl SimReport {
    /// The entry of policy `name`.
    pub fn policy(&self, name: &str) -> Option<&PolicyReport> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// Writes the report as a table, or as pretty JSON with `json`.
pub fn print_report(
    r: &SimReport,
    json: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), SimError> {
    let err = |e: std::io::Error| SimError::Output {
        what: "stdout".into(),
        problem: e.to_string(),
    };
    if json {
        let text = serde_json::to_string_pretty(r).map_err(|e| SimError::Output {
            what: "JSON".into(),
            problem: e.to_string(),
        })?;
        return writeln!(out, "{text}").map_err(err);
    }
    writeln!(
        out,
        "trace {} ({} rows, step {}s, peak {}, boot {}s, lag {}s); SLO: at most {:.1} overloaded minutes ({}% of {:.0})",
        r.trace, r.rows, r.step_secs, r.peak, r.boot_secs, r.lag_secs, r.slo_minutes, r.slo_pct, r.trace_minutes
    )
    .map_err(err)?;
    writeln!(
        out,
        "{:<20} {:<16} {:>4} {:>12} {:>12} {:>18} {:>16} {:>16} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "name",
        "setting",
        "slo",
        "server_hours",
        "oracle_ratio",
        "overloaded_minutes",
        "max_overload_pct",
        "mean_utilization",
        "actions",
        "under_a",
        "over_a",
        "under_t",
        "over_t"
    )
    .map_err(err)?;
    for p in &r.policies {
        writeln!(
            out,
            "{:<20} {:<16} {:>4} {:>12.1} {:>12.3} {:>18} {:>16.1} {:>16.1} {:>7} {:>7.2} {:>7.1} {:>7.2} {:>7.1}",
            p.name,
            p.setting,
            if p.meets_slo { "ok" } else { "MISS" },
            p.server_hours,
            p.oracle_ratio,
            p.overloaded_minutes,
            p.max_overload_pct,
            p.mean_utilization,
            p.actions,
            p.under_provisioning_accuracy,
            p.over_provisioning_accuracy,
            p.under_provisioning_timeshare,
            p.over_provisioning_timeshare
        )
        .map_err(err)?;
    }
    writeln!(out, "(SPEC elasticity, percent: under_a/over_a = under/over-provisioning accuracy, under_t/over_t = timeshare)")
        .map_err(err)?;
    print_equal_risk(&r.equal_risk, out).map_err(err)
}

/// The equal-risk table: each baseline at its cheapest swept setting with at most tend's overloaded minutes.
fn print_equal_risk(rows: &[EqualRisk], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    writeln!(
        out,
        "\nequal risk: each baseline at its cheapest setting with at most tend's {} overloaded minutes",
        first.tend_overloaded_minutes
    )?;
    writeln!(
        out,
        "{:<20} {:<16} {:>12} {:>18} {:>10}",
        "name", "setting", "server_hours", "overloaded_minutes", "tend_ratio"
    )?;
    for e in rows {
        match (
            &e.setting,
            e.server_hours,
            e.overloaded_minutes,
            e.tend_ratio,
        ) {
            (Some(s), Some(h), Some(o), Some(t)) => {
                writeln!(out, "{:<20} {s:<16} {h:>12.1} {o:>18} {t:>10.3}", e.name)?
            }
            _ => writeln!(
                out,
                "{:<20} {:<16} (no swept setting is that safe)",
                e.name, "-"
            )?,
        }
    }
    Ok(())
}

/// Max of each bucket of `values`, at most `points` buckets: (x in hours, y).
fn downsample(
    values: impl ExactSizeIterator<Item = f64>,
    step_h: f64,
    points: usize,
) -> Vec<(f64, f64)> {
    let len = values.len();
    let per = len.div_ceil(points.max(1)).max(1);
    let mut out = Vec::with_capacity(points);
    let mut best = f64::MIN;
    for (i, v) in values.enumerate() {
        best = best.max(v);
        if (i + 1) % per == 0 || i + 1 == len {
            out.push(((i + 1 - per.min(i + 1)) as f64 * step_h, best));
            best = f64::MIN;
        }
    }
    out
}

/// Draws a chart's legend (both charts' style) at `position`.
fn legend<'a, 'b>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    'b: 'a,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())
}

/// Draws demand and each simulated policy's serving capacity over time.
pub fn write_svg(r: &SimReport, path: &Path) -> Result<(), SimError> {
    let err = |e: String| SimError::Output {
        what: path.display().to_string(),
        problem: e,
    };
    let step_h = r.step_secs / 3600.0;
    let hours = r.demand.len() as f64 * step_h;
    let top = r
        .policies
        .iter()
        .flat_map(|p| p.capacity.iter().map(|c| f64::from(*c)))
        .fold(r.peak, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (1600, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Demand and serving capacity: {}",
                Path::new(&r.trace)
                    .file_name()
                    .map_or(r.trace.clone(), |n| n.to_string_lossy().into_owned())
            ),
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..hours.max(step_h), 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("servers")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, RGBColor(255, 140, 0)];
    for (i, p) in r.policies.iter().filter(|p| p.name != "oracle").enumerate() {
        let color = colors[i % colors.len()];
        let pts = downsample(p.capacity.iter().map(|c| f64::from(*c)), step_h, 1500);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(1)))
            .map_err(|e| err(e.to_string()))?
            .label(format!(
                "{} ({}) {:.0} h",
                p.name, p.setting, p.server_hours
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    let pts = downsample(r.demand.iter().copied(), step_h, 1500);
    chart
        .draw_series(LineSeries::new(pts, BLACK.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("demand (servers)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Draws cost against risk: each swept baseline's frontier (the cheapest setting for each number of overloaded
/// minutes) as a curve, tend (and every policy run at one setting) as a point, the SLO as a dashed line.
pub fn write_risk_svg(r: &SimReport, path: &Path) -> Result<(), SimError> {
    let err = |e: String| SimError::Output {
        what: path.display().to_string(),
        problem: e,
    };
    let curves: Vec<(String, Vec<(f64, f64)>)> = r
        .sweeps
        .iter()
        .map(|s| {
            let pts = s
                .frontier()
                .iter()
                .map(|p| (p.overloaded_minutes as f64, p.server_hours))
                .collect();
            (s.name.clone(), pts)
        })
        .collect();
    let singles: Vec<&PolicyReport> = r
        .policies
        .iter()
        .filter(|p| p.name != "oracle" && !r.sweeps.iter().any(|s| s.name == p.name))
        .collect();
    let all_pts = || {
        curves.iter().flat_map(|c| c.1.iter().copied()).chain(
            singles
                .iter()
                .map(|p| (p.overloaded_minutes as f64, p.server_hours)),
        )
    };
    let x_max = all_pts().map(|p| p.0).fold(r.slo_minutes, f64::max) * 1.05 + 1.0;
    let y_min = all_pts().map(|p| p.1).fold(f64::MAX, f64::min);
    let y_max = all_pts().map(|p| p.1).fold(0.0, f64::max);
    let (y_lo, y_hi) = if y_min <= y_max {
        let pad = (y_max - y_min).max(1.0) * 0.05;
        (y_min - pad, y_max + pad)
    } else {
        (0.0, 1.0)
    };
    let root = SVGBackend::new(path, (1200, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Cost versus overload, boot {}s, lag {}s: each baseline's sweep, tend at its defaults",
                r.boot_secs, r.lag_secs
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, y_lo..y_hi)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("overloaded minutes")
        .y_desc("server-hours")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let colors = [BLUE, GREEN, MAGENTA, CYAN, RGBColor(255, 140, 0)];
    for (i, (name, pts)) in curves.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(format!("{name} (sweep)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    for p in singles {
        let color = if p.name == "tend" { RED } else { BLACK };
        let at = (p.overloaded_minutes as f64, p.server_hours);
        chart
            .draw_series([Circle::new(at, 7, color.filled())])
            .map_err(|e| err(e.to_string()))?
            .label(format!("{} ({})", p.name, p.setting))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    let slo = r.slo_minutes;
    chart
        .draw_series(DashedLineSeries::new(
            [(slo, y_lo), (slo, y_hi)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(|e| err(e.to_string()))?
        .label(format!("SLO: {slo:.1} overloaded minutes"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))
}
