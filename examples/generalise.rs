//! The generalisation check of issue 8: the baselines fixed at the setting `--sweep` picks on the shipped trace,
//! tend at its defaults, on the shipped trace's transforms and on generated traces (see `tend::sim::synth`).
//!
//! `cargo run --release --example generalise -- ../shared/traces/alibaba2018-30s.csv`
use std::path::PathBuf;
use std::time::Duration;

use tend::cloud::sim::trace;
use tend::sim::{SimOptions, synth};

fn main() {
    let path = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/traces/alibaba2018-30s.csv".into()),
    );
    if let Err(e) = run(&path) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run(path: &std::path::Path) -> Result<(), tend::sim::SimError> {
    let shipped = trace::load_trace(path, None)?;
    let opts = SimOptions {
        step: Duration::from_secs(30),
        ..SimOptions::default()
    };
    let baselines = synth::swept_baselines(&shipped, &opts)?;
    let names: Vec<String> = baselines
        .iter()
        .map(|b| format!("{}:{}", b.name, b.setting()))
        .collect();
    println!(
        "baselines fixed at the shipped trace's swept settings: {}",
        names.join(" ")
    );
    let results = synth::compare(&synth::generalisation_set(&shipped), &baselines, &opts)?;
    print!("{}", synth::table(&results));
    println!(
        "(cells: server-hours/overloaded minutes, * = misses the SLO; tend/best = tend over the cheapest baseline meeting it)"
    );
    Ok(())
}
