//! `tend simulate`: the flags, turned into a [`SimulateRequest`]; the library runs it and writes the report.

use std::path::PathBuf;
use std::time::Duration;

use tend::sim::{PolicySpec, SimOptions, SimulateRequest};

use super::Status;

/// `tend simulate`: replay a load trace against scaling policies.
///
/// Example: `tend simulate --trace alibaba2018-30s.csv --step 30s --sweep --svg fleet.svg`
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// CSV file with a header row; each row is one step of load.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// Column holding the load (default: the first column).
    #[arg(long, value_name = "NAME")]
    column: Option<String>,
    /// Time between two rows of the trace, e.g. 30s.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// Demand at the trace's maximum, in fully loaded servers.
    #[arg(long, value_name = "N", default_value_t = 20.0)]
    peak: f64,
    /// Time from creating an instance until it serves.
    #[arg(long, value_name = "DUR", default_value = "2m", value_parser = humantime::parse_duration)]
    boot: Duration,
    /// Delay of every load metric.
    #[arg(long, value_name = "DUR", default_value = "1m", value_parser = humantime::parse_duration)]
    lag: Duration,
    /// Allowed overloaded minutes, in percent of the trace.
    #[arg(long, value_name = "PCT", default_value_t = 0.1)]
    slo: f64,
    /// Policy to run, as NAME[:KNOB=VALUE,...] (repeatable; default: all at their defaults). Names: tend, seed,
    /// aws-simple, aws-target-tracking, k8s-hpa, oracle. E.g. --policy aws-target-tracking:target=68
    #[arg(long, value_name = "NAME[:KNOB=VALUE,...]")]
    policy: Vec<String>,
    /// For each baseline, try every threshold on a 1-point grid: the table shows its cheapest setting that meets
    /// the SLO, and an equal-risk table its cheapest setting at most as often overloaded as tend (at its defaults).
    #[arg(long)]
    sweep: bool,
    /// Draw demand and each policy's serving capacity over time into this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Draw cost against overloaded minutes into this SVG file: each swept baseline's cheapest settings as a
    /// curve, tend as a point (use with --sweep).
    #[arg(long, value_name = "FILE")]
    risk_svg: Option<PathBuf>,
    /// Print the report as JSON (fields under `policies`) instead of a table.
    #[arg(long)]
    json: bool,
}

impl Args {
    /// The request these flags make.
    fn request(self) -> Result<SimulateRequest, tend::sim::SimError> {
        let policies = self
            .policy
            .iter()
            .map(|p| PolicySpec::parse(p))
            .collect::<Result<_, _>>()?;
        Ok(SimulateRequest {
            trace: self.trace,
            column: self.column,
            options: SimOptions {
                step: self.step,
                peak: self.peak,
                boot: self.boot,
                lag: self.lag,
                slo: self.slo,
                policies,
                sweep: self.sweep,
            },
            svg: self.svg,
            risk_svg: self.risk_svg,
            json: self.json,
        })
    }
}

/// Runs the simulation and prints its report to stdout.
pub fn run(args: Args) -> anyhow::Result<Status> {
    let request = args.request()?;
    tend::sim::run(&request, &mut std::io::stdout().lock())?;
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_cli_defaults_are_the_default_options() {
        let cli = Cli::parse_from(["tend", "--trace", "t.csv"]);
        assert_eq!(cli.args.request().unwrap().options, SimOptions::default());
    }
}
