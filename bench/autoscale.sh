#!/usr/bin/env bash
# Autoscaling benchmark: replays the shipped load trace through `tend simulate` and prints the comparison table:
# tend at its defaults against each baseline (the seed's policy, AWS simple scaling, AWS target tracking,
# Kubernetes HPA) at the cheapest setting that meets the SLO on this very trace (--sweep), plus the oracle.
# The summary gives tend's server-hours as a ratio of each baseline's (below 1 = tend is cheaper).
#
# Run:   cargo build --release && bench/autoscale.sh [extra `tend simulate` flags]
# Env:   TEND (binary; default ${CARGO_TARGET_DIR:-target}/release/tend)
#        TRACE (default ../shared/traces/alibaba2018-30s.csv, next to the repo)   SVG (chart; default autoscale.svg)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${TEND:-${CARGO_TARGET_DIR:-$here/target}/release/tend}"
trace="${TRACE:-$here/../shared/traces/alibaba2018-30s.csv}"
svg="${SVG:-autoscale.svg}"
[ -x "$bin" ] || { echo "build first: cargo build --release (looked for $bin; or set TEND=...)" >&2; exit 2; }
[ -f "$trace" ] || { echo "trace not found: $trace (set TRACE=...)" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

start=$(date +%s.%N)
"$bin" simulate --trace "$trace" --step 30s --sweep --svg "$svg" "$@" | tee "$out"
secs=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.1f", a-b}')

# Columns: name setting slo server_hours oracle_ratio ...
awk -v secs="$secs" -v svg="$svg" '
  $3 == "ok" || $3 == "MISS" { n++; name[n] = $1; slo[n] = $3; hours[n] = $4; if ($1 == "tend") t = $4 }
  END {
    print "== summary (simulated in " secs " s; chart " svg ")";
    if (t == "") { print "no tend row in the table" > "/dev/stderr"; exit 1 }
    for (i = 1; i <= n; i++) if (name[i] != "tend")
      printf "server-hours ratio tend/%-20s = %.3f (%s meets the SLO: %s)\n", name[i], t / hours[i], name[i], slo[i] }' "$out"
