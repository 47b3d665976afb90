#!/usr/bin/env bash
# Website monitor benchmark: 10,000 HTTP targets (one local server, many paths) checked every 10 s, by
#
#   1. tend:      the real binary, `tend monitor --config FILE` (generated tend.toml, web on a loopback port);
#                 figures from its /metrics (tend_monitor_schedule_lag_seconds, tend_monitor_checks_total)
#                 and from /proc/PID (utime+stime, VmHWM).
#   2. blackbox:  Prometheus's blackbox_exporter probing the same targets at the same rate. The scraper loop
#                 that drives it is a second `tend monitor` whose targets are the exporter's
#                 /probe?module=http_2xx&target=... URLs (one probe per target per interval, like Prometheus
#                 with a 10 s scrape interval); only the exporter's own CPU is counted.
#
# The two run one after the other (same targets, same server, same duration), so they do not share the CPU.
# Prints lag p50/p99, checks, CPU seconds, CPU seconds per 1000 checks and peak RSS for each, and the
# CPU-per-check ratio tend/blackbox. Everything stays on 127.0.0.1.
#
# Run:   cargo build --release && bench/monitor.sh            (about 2 x DURATION + 20 s)
# Env:   TARGETS (10000) INTERVAL (10s) TIMEOUT (5s) DURATION (120, seconds; "120s" also accepted)
#        CONCURRENCY (512)  TEND (path of the tend binary; default ${CARGO_TARGET_DIR:-target}/release/tend)
#        KEEP=1 keeps the work directory (configs, logs).
# Needs: prometheus-blackbox-exporter and nginx (apt-get install -y prometheus-blackbox-exporter nginx);
#        without nginx the target server is a small asyncio Python server (slower, but keep-alive).
set -euo pipefail

TARGETS=${TARGETS:-10000}
INTERVAL=${INTERVAL:-10s}
TIMEOUT=${TIMEOUT:-5s}
DURATION=${DURATION:-120}
DURATION=${DURATION%s}
CONCURRENCY=${CONCURRENCY:-512}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEND=${TEND:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tend}
WORK=$(mktemp -d /tmp/tend-monitor-bench.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${KEEP:-}" ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

[[ -x "$TEND" ]] || { echo "tend binary not found at $TEND: cargo build --release (or TEND=/path)" >&2; exit 2; }
BB=$(command -v prometheus-blackbox-exporter || command -v blackbox_exporter || true)
[[ -n "$BB" ]] || { echo "blackbox_exporter missing: apt-get install -y prometheus-blackbox-exporter" >&2; exit 2; }
NGINX=$(command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "port $1 never opened" >&2; exit 3
}
# utime+stime (fields 14, 15; the name in field 2 has no spaces here) in seconds; VmHWM in MiB.
cpu_of() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }
rss_of() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# metric NAME [LABEL_MATCH]: sum of the samples of NAME (whose label text contains LABEL_MATCH) in a scrape.
metric() { awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"([{]|$)" && (l == "" || index($1, l)) {s += $2} END {printf "%.10g", s}' "$1"; }
alive() { kill -0 "$1" 2>/dev/null || { echo "$2 died; its log:" >&2; tail -20 "$3" >&2; exit 1; }; }

# --- the target server: 200 "ok" on every path, keep-alive ----------------------------------------------
SERVER_PORT=$(free_port)
if [[ -n "$NGINX" ]]; then
    mkdir -p "$WORK/nginx"
    user_line=""; [[ $(id -u) -eq 0 ]] && user_line="user root;"
    cat > "$WORK/nginx/nginx.conf" <<EOF
$user_line
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$SERVER_PORT;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF
    "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" & SERVER_PID=$!
    SERVER_KIND="nginx (1 worker)"
else
    cat > "$WORK/server.py" <<'EOF'
import asyncio, sys
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(REPLY)
            await writer.drain()
            if b"connection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
EOF
    python3 "$WORK/server.py" "$SERVER_PORT" 2>"$WORK/server.log" & SERVER_PID=$!
    SERVER_KIND="python asyncio (install nginx for a faster one)"
fi
PIDS+=("$SERVER_PID")
wait_port "$SERVER_PORT"
BASE="http://127.0.0.1:$SERVER_PORT"
[[ $(curl -s "$BASE/t/1") == ok ]] || { echo "target server at $BASE does not answer ok" >&2; exit 3; }

# --- configs -----------------------------------------------------------------------------------------------
# gen_config NAME WEB_PORT [BLACKBOX_ADDR]: a tend.toml monitoring TARGETS paths of the server (directly, or
# through the exporter's /probe endpoint).
gen_config() {
    python3 - "$WORK/$1" "$2" "${3:-}" "$TARGETS" "$BASE" "$INTERVAL" "$TIMEOUT" "$CONCURRENCY" <<'PY'
import sys, urllib.parse
dir, port, bb, n, base, interval, timeout, conc = sys.argv[1:9]
out = [f'[store]\npath = "{dir}/tend.db"\n', f'[web]\nlisten = "127.0.0.1:{port}"\n', '[log]\nlevel = "warning"\n',
       f'[monitor]\ninterval = "{interval}"\ntimeout = "{timeout}"\nconcurrency = {conc}\n']
for i in range(int(n)):
    target = f"{base}/t/{i}"
    if bb:
        url = f"http://{bb}/probe?module=http_2xx&target={urllib.parse.quote(target, safe='')}"
        extra = 'body_contains = "probe_success 1"\n'
    else:
        url, extra = target, ""
    out.append(f'[[monitor.target]]\nname = "t{i:05d}"\nurl = "{url}"\n{extra}')
print("\n".join(out))
PY
}
mkdir -p "$WORK/tend" "$WORK/driver"
TEND_PORT=$(free_port)
gen_config tend "$TEND_PORT" > "$WORK/tend/tend.toml"
"$TEND" check-config --config "$WORK/tend/tend.toml" > "$WORK/tend/check-config.log" 2>&1 \
    || { cat "$WORK/tend/check-config.log" >&2; exit 1; }

echo "== $TARGETS targets every $INTERVAL (timeout $TIMEOUT, concurrency $CONCURRENCY) for ${DURATION}s each"
echo "== target server: $SERVER_KIND at $BASE; tend: $TEND"

# --- 1. tend ---------------------------------------------------------------------------------------------
"$TEND" monitor --config "$WORK/tend/tend.toml" > "$WORK/tend/tend.log" 2>&1 & TEND_PID=$!; PIDS+=("$TEND_PID")
T0=$(date +%s.%N)
wait_port "$TEND_PORT"
sleep "$DURATION"
alive "$TEND_PID" tend "$WORK/tend/tend.log"
curl -s --max-time 10 "http://127.0.0.1:$TEND_PORT/metrics" > "$WORK/tend/metrics.txt"
TEND_CPU=$(cpu_of "$TEND_PID"); TEND_RSS=$(rss_of "$TEND_PID")
TEND_WALL=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN {printf "%.1f", a-b}')
kill "$TEND_PID"; wait "$TEND_PID" 2>/dev/null || true
M="$WORK/tend/metrics.txt"
TEND_CHECKS=$(metric "$M" tend_monitor_checks_total)
TEND_UP=$(metric "$M" tend_monitor_checks_total 'result="up"')
TEND_P50=$(metric "$M" tend_monitor_schedule_lag_seconds 'quantile="0.5"')
TEND_P99=$(metric "$M" tend_monitor_schedule_lag_seconds 'quantile="0.99"')
[[ "$TEND_CHECKS" != 0 ]] || { echo "tend reported no checks; its log:" >&2; tail -20 "$WORK/tend/tend.log" >&2; exit 1; }
echo "tend:     checks=$TEND_CHECKS up=$TEND_UP lag_p50_ms=$(awk -v x="$TEND_P50" 'BEGIN {printf "%.1f", x*1000}')" \
     "lag_p99_ms=$(awk -v x="$TEND_P99" 'BEGIN {printf "%.1f", x*1000}') cpu_s=$TEND_CPU (whole process, ${TEND_WALL}s)" \
     "peak_rss_mb=$TEND_RSS"
grep -v '^$' "$WORK/tend/tend.log" | tail -3 | sed 's/^/  tend log: /' || true

# --- 2. blackbox_exporter, driven at the same rate -----------------------------------------------------------
BB_PORT=$(free_port)
cat > "$WORK/blackbox.yml" <<EOF
modules:
  http_2xx:
    prober: http
    timeout: $TIMEOUT
    http:
      preferred_ip_protocol: ip4
EOF
"$BB" --config.file="$WORK/blackbox.yml" --web.listen-address="127.0.0.1:$BB_PORT" --log.level=warn \
    2>"$WORK/bb.log" & BB_PID=$!; PIDS+=("$BB_PID")
wait_port "$BB_PORT"
curl -s "http://127.0.0.1:$BB_PORT/probe?module=http_2xx&target=$BASE/t/0" | grep -q '^probe_success 1' \
    || { echo "blackbox_exporter cannot probe $BASE" >&2; exit 3; }
DRIVER_PORT=$(free_port)
gen_config driver "$DRIVER_PORT" "127.0.0.1:$BB_PORT" > "$WORK/driver/tend.toml"
BB_CPU0=$(cpu_of "$BB_PID")
"$TEND" monitor --config "$WORK/driver/tend.toml" > "$WORK/driver/tend.log" 2>&1 & DRIVER_PID=$!; PIDS+=("$DRIVER_PID")
wait_port "$DRIVER_PORT"
sleep "$DURATION"
alive "$DRIVER_PID" "the driver (tend)" "$WORK/driver/tend.log"
alive "$BB_PID" blackbox_exporter "$WORK/bb.log"
curl -s --max-time 10 "http://127.0.0.1:$DRIVER_PORT/metrics" > "$WORK/driver/metrics.txt"
BB_CPU=$(awk -v a="$(cpu_of "$BB_PID")" -v b="$BB_CPU0" 'BEGIN {printf "%.2f", a-b}')
BB_RSS=$(rss_of "$BB_PID")
DRIVER_CPU=$(cpu_of "$DRIVER_PID")
kill "$DRIVER_PID"; wait "$DRIVER_PID" 2>/dev/null || true
M="$WORK/driver/metrics.txt"
BB_CHECKS=$(metric "$M" tend_monitor_checks_total)
BB_UP=$(metric "$M" tend_monitor_checks_total 'result="up"')
D_P50=$(metric "$M" tend_monitor_schedule_lag_seconds 'quantile="0.5"')
D_P99=$(metric "$M" tend_monitor_schedule_lag_seconds 'quantile="0.99"')
[[ "$BB_CHECKS" != 0 ]] || { echo "the driver reported no probes; its log:" >&2; tail -20 "$WORK/driver/tend.log" >&2; exit 1; }
echo "blackbox: probes=$BB_CHECKS probe_success=$BB_UP cpu_s=$BB_CPU (exporter only) peak_rss_mb=$BB_RSS" \
     "(driver: lag_p50_ms=$(awk -v x="$D_P50" 'BEGIN {printf "%.1f", x*1000}')" \
     "lag_p99_ms=$(awk -v x="$D_P99" 'BEGIN {printf "%.1f", x*1000}') cpu_s=$DRIVER_CPU, not counted)"

# --- summary -------------------------------------------------------------------------------------------------
awk -v tc="$TEND_CPU" -v tn="$TEND_CHECKS" -v tu="$TEND_UP" -v bc="$BB_CPU" -v bn="$BB_CHECKS" -v bu="$BB_UP" \
    -v p50="$TEND_P50" -v p99="$TEND_P99" -v tr="$TEND_RSS" -v br="$BB_RSS" -v n="$TARGETS" \
    -v iv="${INTERVAL%s}" -v d="$DURATION" 'BEGIN {
  t = tc * 1000 / tn; b = bc * 1000 / bn; expected = n * d / iv;
  print  "== summary";
  printf "checks done:                 tend %d (%.0f%% of the %d scheduled, %d up), blackbox %d (%d up)\n", tn, 100 * tn / expected, expected, tu, bn, bu;
  printf "tend schedule lag:           p50 %.1f ms, p99 %.1f ms\n", p50 * 1000, p99 * 1000;
  printf "CPU seconds per 1000 checks: tend %.3f, blackbox_exporter %.3f\n", t, b;
  printf "peak RSS:                    tend %s MiB, blackbox_exporter %s MiB\n", tr, br;
  printf "ratio CPU per check tend/blackbox = %.2f (goal <= 0.5)\n", t / b }'
