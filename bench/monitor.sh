#!/usr/bin/env bash
# Website monitor benchmark: 10,000 HTTP targets (one local server, many paths) at a 10 s interval.
#
#   1. tend:      `tend monitor --config FILE` if TEND_BIN is set (else the scheduler via `monitor-bench run`)
#   2. blackbox:  Prometheus's blackbox_exporter probing the same targets at the same rate, driven by
#                 `monitor-bench run` acting as a Prometheus-like scraper (one probe per target per interval)
# Prints lag p50/p99, CPU seconds per 1000 checks and peak RSS for tend, the same CPU figure for
# blackbox_exporter (its own process only) and the ratio. Loopback only.
#
# Env: TARGETS (10000) INTERVAL (10s) DURATION (120s, seconds or "120s") CONCURRENCY (512)
#      BENCH_BIN (monitor-bench binary; built with cargo --release if unset) TEND_BIN (optional)
#      TEND_METRICS_URL (optional: tend's /metrics, to read tend_monitor_checks_total)
# Needs: apt-get install -y prometheus-blackbox-exporter
set -euo pipefail

TARGETS=${TARGETS:-10000}
INTERVAL=${INTERVAL:-10s}
DURATION=${DURATION:-120s}
CONCURRENCY=${CONCURRENCY:-512}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

if [[ -z "${BENCH_BIN:-}" ]]; then
  (cd "$HERE" && cargo build --release --quiet --bin monitor-bench)
  BENCH_BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/monitor-bench"
fi
BB=$(command -v prometheus-blackbox-exporter || command -v blackbox_exporter || true)
[[ -n "$BB" ]] || { echo "blackbox_exporter missing: apt-get install -y prometheus-blackbox-exporter" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 3; }
secs() { local d=${1%s}; echo "$d"; }
# utime+stime in seconds and VmHWM in MiB of a pid
cpu_of() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
rss_of() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

SERVER_PORT=$(free_port)
"$BENCH_BIN" serve --listen "127.0.0.1:$SERVER_PORT" 2>/dev/null & PIDS+=($!)
wait_port "$SERVER_PORT"
BASE="http://127.0.0.1:$SERVER_PORT"
"$BENCH_BIN" gen-config --targets "$TARGETS" --base "$BASE" --interval "$INTERVAL" --timeout "${TIMEOUT:-5s}" --concurrency "$CONCURRENCY" > "$WORK/tend.toml"
echo "== $TARGETS targets every $INTERVAL for $DURATION (server $BASE)"

# --- 1. tend ---------------------------------------------------------------------------------------
if [[ -n "${TEND_BIN:-}" ]]; then
  "$TEND_BIN" monitor --config "$WORK/tend.toml" > "$WORK/tend.log" 2>&1 & TEND_PID=$!; PIDS+=($TEND_PID)
  sleep "$(secs "$DURATION")"
  TEND_CPU=$(cpu_of "$TEND_PID"); TEND_RSS=$(rss_of "$TEND_PID")
  if [[ -n "${TEND_METRICS_URL:-}" ]]; then
    TEND_CHECKS=$(curl -s "$TEND_METRICS_URL" | awk '/^tend_monitor_checks_total/ {s+=$2} END {print s+0}')
  else
    TEND_CHECKS=$(( TARGETS * $(secs "$DURATION") / $(secs "$INTERVAL") )); echo "(tend checks estimated from the schedule)"
  fi
  kill "$TEND_PID"
  echo "tend: checks=$TEND_CHECKS cpu_s=$TEND_CPU peak_rss_mb=$TEND_RSS (lag: see $WORK/tend.log lines below)"
  grep -i lag "$WORK/tend.log" | tail -3 || true
else
  OUT=$("$BENCH_BIN" run --config "$WORK/tend.toml" --duration "$DURATION")
  echo "tend (scheduler via monitor-bench): $OUT"
  TEND_CHECKS=$(grep -o 'checks=[0-9]*' <<<"$OUT" | head -1 | cut -d= -f2)
  TEND_CPU=$(grep -o 'cpu_s=[0-9.]*' <<<"$OUT" | cut -d= -f2)
fi

# --- 2. blackbox_exporter at the same rate -------------------------------------------------------------
BB_PORT=$(free_port)
cat > "$WORK/blackbox.yml" <<EOF
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
EOF
"$BB" --config.file="$WORK/blackbox.yml" --web.listen-address="127.0.0.1:$BB_PORT" --log.level=warn 2>"$WORK/bb.log" & BB_PID=$!; PIDS+=($BB_PID)
wait_port "$BB_PORT"
"$BENCH_BIN" gen-config --targets "$TARGETS" --base "$BASE" --interval "$INTERVAL" --timeout "${TIMEOUT:-5s}" --concurrency "$CONCURRENCY" \
  --blackbox "127.0.0.1:$BB_PORT" > "$WORK/bb.toml"
BB_CPU0=$(cpu_of "$BB_PID")
OUT=$("$BENCH_BIN" run --config "$WORK/bb.toml" --duration "$DURATION")
BB_CPU=$(awk -v a="$(cpu_of "$BB_PID")" -v b="$BB_CPU0" 'BEGIN {printf "%.2f", a-b}')
BB_RSS=$(rss_of "$BB_PID")
BB_CHECKS=$(grep -o 'checks=[0-9]*' <<<"$OUT" | head -1 | cut -d= -f2)
BB_UP=$(grep -o ' up=[0-9]*' <<<"$OUT" | cut -d= -f2)
echo "blackbox_exporter (driver: $OUT)"
echo "blackbox_exporter: probes=$BB_CHECKS probe_success=$BB_UP cpu_s=$BB_CPU peak_rss_mb=$BB_RSS"

awk -v tc="$TEND_CPU" -v tn="$TEND_CHECKS" -v bc="$BB_CPU" -v bn="$BB_CHECKS" 'BEGIN {
  t = tc * 1000 / tn; b = bc * 1000 / bn;
  printf "CPU seconds per 1000 checks: tend %.3f, blackbox_exporter %.3f, ratio tend/blackbox %.2f (goal <= 0.5)\n", t, b, t / b }'
