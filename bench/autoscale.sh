#!/usr/bin/env bash
# Prints the autoscaling comparison table on the shipped trace: tend at its defaults against each baseline at
# the cheapest setting that meets the SLO on this very trace (--sweep). Build first: cargo build --release
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CARGO_TARGET_DIR:-$here/target}/release/tend"
trace="${TRACE:-$here/../shared/traces/alibaba2018-30s.csv}"
[ -x "$bin" ] || { echo "build first: cargo build --release (looked for $bin)" >&2; exit 2; }
[ -f "$trace" ] || { echo "trace not found: $trace (set TRACE=...)" >&2; exit 2; }
time "$bin" simulate --trace "$trace" --step 30s --sweep --svg "${SVG:-autoscale.svg}" "$@"
