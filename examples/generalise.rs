//! The generalisation check of issues 8 and 16: the baselines fixed at the settings `--sweep` picks on the shipped
//! trace (at the same boot time), tend at its defaults, on the shipped trace's transforms and on generated traces
//! (see `tend::sim::synth`); the goal counted without the shipped trace, the held-out trace on its own.
//!
//! `cargo run --release --example generalise -- TRACE [BOOT_SECONDS [NAME:SETTING ...]]`: without settings it
//! sweeps the shipped trace itself; `bench/autoscale.sh` passes the ones `tend simulate --sweep` printed.
use std::path::PathBuf;
use std::time::Duration;

use tend::cloud::sim::trace;
use tend::sim::{PolicySpec, SimError, SimOptions, synth};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "../shared/traces/alibaba2018-30s.csv".into()),
    );
    let boot = match args.get(1).map(|b| b.parse::<u64>()) {
        None => 120,
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            eprintln!("error: the boot time is whole seconds: {e}");
            std::process::exit(2);
        }
    };
    let specs: Vec<&String> = args.iter().skip(2).collect();
    if let Err(e) = run(&path, Duration::from_secs(boot), &specs) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run(path: &std::path::Path, boot: Duration, specs: &[&String]) -> Result<(), SimError> {
    let shipped = trace::load_trace(path, None)?;
    let opts = SimOptions {
        step: Duration::from_secs(30),
        boot,
        ..SimOptions::default()
    };
    let baselines = if specs.is_empty() {
        synth::swept_baselines(&shipped, &opts)?
    } else {
        specs
            .iter()
            .map(|s| PolicySpec::parse(s))
            .collect::<Result<_, _>>()?
    };
    let names: Vec<String> = baselines
        .iter()
        .map(|b| format!("{}:{}", b.name, b.setting()))
        .collect();
    println!(
        "boot {}s; baselines fixed at the shipped trace's swept settings: {}",
        boot.as_secs(),
        names.join(" ")
    );
    let results = synth::compare(&synth::generalisation_set(&shipped), &baselines, &opts)?;
    print!("{}", synth::table(&results));
    println!(
        "(cells: server-hours/overloaded minutes, * = misses the SLO; tend/best = tend over the cheapest baseline meeting it)"
    );
    print!("{}", synth::summary(&results));
    Ok(())
}
