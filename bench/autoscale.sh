#!/usr/bin/env bash
# Autoscaling benchmark. For each boot time (60 s, 120 s, 300 s, 600 s), it replays the shipped load trace through
# `tend simulate --sweep`: tend at its defaults against each baseline (the seed's policy, AWS simple scaling, AWS
# target tracking, the Kubernetes HPA), every threshold of each baseline tried on a 1-point grid; the table shows
# each baseline at its cheapest setting that meets the SLO, the equal-risk table at its cheapest setting that is
# overloaded no more often than tend. Then the generalisation set (the example `generalise`) with the baselines
# fixed at those settings. It ends with a summary (tend's server-hours over each baseline's, per boot time) and
# the cost of basic CloudWatch monitoring (tend at a 5-minute metric lag against 1 minute).
#
# Run:   cargo build --release --bin tend --example generalise && bench/autoscale.sh
# Env:   TEND (binary; default ${CARGO_TARGET_DIR:-target}/release/tend), GENERALISE (the example binary),
#        TRACE (default ../shared/traces/alibaba2018-30s.csv, next to the repo), BOOTS (default "60 120 300 600"),
#        OUT (folder for the SVG charts; default .), TEND_SIM_THREADS (threads a sweep may use; default: the cores)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
bin="${TEND:-$target/release/tend}"
gen="${GENERALISE:-$target/release/examples/generalise}"
trace="${TRACE:-$here/../shared/traces/alibaba2018-30s.csv}"
boots="${BOOTS:-60 120 300 600}"
out_dir="${OUT:-.}"
[ -x "$bin" ] || { echo "build first: cargo build --release --bin tend --example generalise (looked for $bin)" >&2; exit 2; }
[ -x "$gen" ] || { echo "build first: cargo build --release --example generalise (looked for $gen)" >&2; exit 2; }
[ -f "$trace" ] || { echo "trace not found: $trace (set TRACE=...)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for boot in $boots; do
  echo "=============== boot ${boot}s"
  start=$(date +%s.%N)
  "$bin" simulate --trace "$trace" --step 30s --boot "${boot}s" --sweep \
    --svg "$out_dir/autoscale-boot${boot}.svg" --risk-svg "$out_dir/autoscale-risk-boot${boot}.svg" | tee "$work/sim-$boot"
  echo "(simulated in $(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.0f", a-b}') s)"
  # The baselines' SLO-matched settings (name:setting), for the generalisation set.
  specs=$(awk '$3 == "ok" || $3 == "MISS" { if ($1 != "tend" && $1 != "oracle") print $1 ":" $2 }' "$work/sim-$boot")
  echo
  # shellcheck disable=SC2086
  "$gen" "$trace" "$boot" $specs | tee "$work/gen-$boot"
done

echo
echo "=============== summary: tend's server-hours over each baseline's, on the shipped trace"
echo "(slo = the baseline at its cheapest setting meeting the SLO; risk = at its cheapest setting overloaded no more than tend)"
for boot in $boots; do
  awk -v boot="$boot" '
    $3 == "ok" || $3 == "MISS" { n++; name[n] = $1; hours[$1] = $4; slo[$1] = $3; over[$1] = $6 }
    /^equal risk/ { eq = 1; next }
    eq && $1 != "name" && NF >= 5 { risk[$1] = $5 }
    eq && /no swept setting/ { risk[$1] = "none" }
    END {
      t = hours["tend"];
      line = sprintf("boot %4ss  tend: %s, %s overloaded min", boot, slo["tend"] == "ok" ? "meets SLO" : "MISSES SLO", over["tend"]);
      for (i = 1; i <= n; i++) if (name[i] != "tend" && name[i] != "oracle")
        line = line sprintf(" | %s slo %.3f risk %s", name[i], t / hours[name[i]], risk[name[i]]);
      print line }' "$work/sim-$boot"
done
echo
echo "=============== summary: the generalisation set (without the shipped trace), baselines at the shipped trace's settings"
for boot in $boots; do
  echo "boot ${boot}s:"; grep -E "^(goal|held out|[0-9]+ traces)" "$work/gen-$boot" | sed 's/^/  /'
done
echo
echo "=============== basic CloudWatch monitoring (5-minute points): tend at --lag 1m and --lag 5m, boot 120s"
for lag in 1m 5m; do
  "$bin" simulate --trace "$trace" --step 30s --boot 120s --lag "$lag" --policy tend --policy oracle |
    awk -v lag="$lag" '$1 == "tend" { printf "lag %s: tend %s server-hours, %s overloaded minutes (SLO %s)\n", lag, $4, $6, $3 }'
done
