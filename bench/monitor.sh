#!/usr/bin/env bash
# Website monitor benchmark, equal work: 10,000 targets (one local nginx, many paths) checked every 10 s, each
# check a fresh connection (resolve, connect, for HTTPS a full TLS handshake, one request), over HTTP and then
# over HTTPS (nginx with a certificate from a throwaway CA that both tools trust), by
#
#   1. tend:      the real binary, `tend monitor --config FILE` (generated tend.toml, web on a loopback port;
#                 fresh connections are tend's default); figures from its /metrics
#                 (tend_monitor_schedule_lag_seconds, tend_monitor_checks_total) and from /proc/PID
#                 (utime+stime, VmHWM); then the status page's render time at that many targets.
#   2. blackbox:  Prometheus's blackbox_exporter probing the same targets at the same rate (it opens a new
#                 connection per probe). The scraper loop that drives it is a second `tend monitor`
#                 (with reuse_connections, to keep its own cost low) whose targets are the exporter's
#                 /probe?module=...&target=... URLs (one probe per target per interval, like Prometheus with a
#                 10 s scrape interval); only the exporter's own CPU is counted.
#
# Each tool runs alone (same targets, same server, same duration), so they never share the CPU. Prints lag
# p50/p99, checks, CPU seconds, CPU seconds per 1000 checks and peak RSS for each, and per protocol the
# CPU-per-check ratio tend/blackbox. Everything stays on 127.0.0.1.
#
# Run:   cargo build --release && bench/monitor.sh            (about 4 x DURATION + 60 s)
#        CLUSTER=1 bench/monitor.sh: the cluster mode (bench/monitor_cluster.sh: 3 replicas on etcd, 30,000 targets)
# Env:   TARGETS (10000) INTERVAL (10s) TIMEOUT (5s) DURATION (120, seconds; "120s" also accepted)
#        PROTOCOLS ("http https") CONCURRENCY (512)
#        TEND (path of the tend binary; default ${CARGO_TARGET_DIR:-target}/release/tend)
#        KEEP=1 keeps the work directory (configs, logs).
# Needs: prometheus-blackbox-exporter, nginx, openssl (apt-get install -y prometheus-blackbox-exporter nginx openssl).
set -euo pipefail

# CLUSTER=1: three replicas on etcd against one alone, and the takeover time after a kill (see that script).
if [[ "${CLUSTER:-}" == 1 ]]; then exec "$(dirname "$0")/monitor_cluster.sh" "$@"; fi

TARGETS=${TARGETS:-10000}
INTERVAL=${INTERVAL:-10s}
TIMEOUT=${TIMEOUT:-5s}
DURATION=${DURATION:-120}
DURATION=${DURATION%s}
CONCURRENCY=${CONCURRENCY:-512}
PROTOCOLS=${PROTOCOLS:-http https}
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
[[ -n "$NGINX" ]] || { echo "nginx missing: apt-get install -y nginx" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl missing: apt-get install -y openssl" >&2; exit 2; }

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

# --- the certificate: a throwaway CA (both tools trust it) and an ECDSA P-256 leaf for 127.0.0.1 ---------------
mkdir -p "$WORK/tls"
(
    cd "$WORK/tls" || exit 3
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -days 2 -subj /CN=tend-bench-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key -out leaf.csr \
        -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n' > leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 \
        -extfile leaf.ext 2>/dev/null
)
CA="$WORK/tls/ca.pem"

# --- the target server: nginx answering 200 "ok" on every path, over HTTP and HTTPS -------------------------
HTTP_PORT=$(free_port); HTTPS_PORT=$(free_port)
mkdir -p "$WORK/nginx"
user_line=""; [[ $(id -u) -eq 0 ]] && user_line="user root;"
cat > "$WORK/nginx/nginx.conf" <<NGINX
$user_line
daemon off;
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile 65536;
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
    ssl_certificate $WORK/tls/leaf.pem;
    ssl_certificate_key $WORK/tls/leaf.key;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        listen 127.0.0.1:$HTTPS_PORT ssl;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
NGINX
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" & SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_port "$HTTP_PORT"; wait_port "$HTTPS_PORT"
[[ $(curl -s "http://127.0.0.1:$HTTP_PORT/t/1") == ok ]] || { echo "nginx does not answer ok over HTTP" >&2; exit 3; }
[[ $(curl -s --cacert "$CA" "https://127.0.0.1:$HTTPS_PORT/t/1") == ok ]] \
    || { echo "nginx does not answer ok over HTTPS" >&2; exit 3; }

# --- configs -----------------------------------------------------------------------------------------------
# gen_config DIR WEB_PORT BASE [BLACKBOX_ADDR MODULE]: a tend.toml monitoring TARGETS paths of BASE (directly,
# with fresh connections and the bench CA trusted; or through the exporter's /probe endpoint, pooled).
gen_config() {
    python3 - "$1" "$2" "$3" "${4:-}" "${5:-}" "$TARGETS" "$INTERVAL" "$TIMEOUT" "$CONCURRENCY" "$CA" <<'PY'
import sys, urllib.parse
dir, port, base, bb, module, n, interval, timeout, conc, ca = sys.argv[1:11]
monitor = f'[monitor]\ninterval = "{interval}"\ntimeout = "{timeout}"\nconcurrency = {conc}\n'
monitor += 'reuse_connections = true\n' if bb else f'ca_file = "{ca}"\n'
out = [f'[store]\npath = "{dir}/tend.db"\n', f'[web]\nlisten = "127.0.0.1:{port}"\n', '[log]\nlevel = "warning"\n', monitor]
for i in range(int(n)):
    target = f"{base}/t/{i}"
    if bb:
        url = f"http://{bb}/probe?module={module}&target={urllib.parse.quote(target, safe='')}"
        extra = 'body_contains = "probe_success 1"\n'
    else:
        url, extra = target, ""
    out.append(f'[[monitor.target]]\nname = "t{i:05d}"\nurl = "{url}"\n{extra}')
print("\n".join(out))
PY
}

ms() { awk -v x="$1" 'BEGIN {printf "%.1f", x*1000}'; }

# read_metrics FILE: CHECKS, UP, P50, P99 from a scrape of tend's /metrics.
read_metrics() {
    CHECKS=$(metric "$1" tend_monitor_checks_total)
    UP=$(metric "$1" tend_monitor_checks_total 'result="up"')
    P50=$(metric "$1" tend_monitor_schedule_lag_seconds 'quantile="0.5"')
    P99=$(metric "$1" tend_monitor_schedule_lag_seconds 'quantile="0.99"')
}

# page_time PORT PATH: the median of 5 timed GETs of a page, in ms.
page_time() {
    for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' --max-time 30 "http://127.0.0.1:$1$2"; done \
        | sort -n | awk 'NR == 3 {printf "%.1f", $1 * 1000}'
}

cat > "$WORK/blackbox.yml" <<YML
modules:
  http_2xx:
    prober: http
    timeout: $TIMEOUT
    http:
      preferred_ip_protocol: ip4
  https_2xx:
    prober: http
    timeout: $TIMEOUT
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: $CA
YML

echo "== $TARGETS targets every $INTERVAL (timeout $TIMEOUT, concurrency $CONCURRENCY) for ${DURATION}s per tool and protocol"
echo "== target server: nginx (2 workers), HTTP :$HTTP_PORT and HTTPS :$HTTPS_PORT (ECDSA P-256 leaf, no session resumption)"
echo "== tend: $TEND; blackbox_exporter: $BB"
SUMMARY=()

for PROTO in $PROTOCOLS; do
    case "$PROTO" in
        http) BASE="http://127.0.0.1:$HTTP_PORT"; MODULE=http_2xx ;;
        https) BASE="https://127.0.0.1:$HTTPS_PORT"; MODULE=https_2xx ;;
        *) echo "unknown protocol $PROTO (http or https)" >&2; exit 2 ;;
    esac
    D="$WORK/$PROTO"; mkdir -p "$D/tend" "$D/driver"

    # --- 1. tend -------------------------------------------------------------------------------------------
    TEND_PORT=$(free_port)
    gen_config "$D/tend" "$TEND_PORT" "$BASE" > "$D/tend/tend.toml"
    "$TEND" check-config --config "$D/tend/tend.toml" > "$D/tend/check-config.log" 2>&1 \
        || { cat "$D/tend/check-config.log" >&2; exit 1; }
    "$TEND" monitor --config "$D/tend/tend.toml" > "$D/tend/tend.log" 2>&1 & TEND_PID=$!; PIDS+=("$TEND_PID")
    T0=$(date +%s.%N)
    wait_port "$TEND_PORT"
    sleep "$DURATION"
    alive "$TEND_PID" tend "$D/tend/tend.log"
    curl -s --max-time 10 "http://127.0.0.1:$TEND_PORT/metrics" > "$D/tend/metrics.txt"
    TEND_CPU=$(cpu_of "$TEND_PID"); TEND_RSS=$(rss_of "$TEND_PID")
    TEND_WALL=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN {printf "%.1f", a-b}')
    PAGE_FIRST=$(page_time "$TEND_PORT" /)
    PAGE_LAST=$(page_time "$TEND_PORT" "/monitors?page=$(( (TARGETS + 49) / 50 ))")
    kill "$TEND_PID"; wait "$TEND_PID" 2>/dev/null || true
    read_metrics "$D/tend/metrics.txt"
    TEND_CHECKS=$CHECKS TEND_UP=$UP TEND_P50=$P50 TEND_P99=$P99
    [[ "$TEND_CHECKS" != 0 ]] || { echo "tend reported no checks; its log:" >&2; tail -20 "$D/tend/tend.log" >&2; exit 1; }
    echo "$PROTO tend:     checks=$TEND_CHECKS up=$TEND_UP lag_p50_ms=$(ms "$TEND_P50") lag_p99_ms=$(ms "$TEND_P99")" \
         "cpu_s=$TEND_CPU (whole process, ${TEND_WALL}s) peak_rss_mb=$TEND_RSS" \
         "status_page_ms=$PAGE_FIRST (first page) / $PAGE_LAST (last page), median of 5"
    grep -v '^$' "$D/tend/tend.log" | tail -3 | sed 's/^/  tend log: /' || true

    # --- 2. blackbox_exporter, driven at the same rate ------------------------------------------------------
    BB_PORT=$(free_port)
    "$BB" --config.file="$WORK/blackbox.yml" --web.listen-address="127.0.0.1:$BB_PORT" --log.level=warn \
        2>"$D/bb.log" & BB_PID=$!; PIDS+=("$BB_PID")
    wait_port "$BB_PORT"
    curl -s "http://127.0.0.1:$BB_PORT/probe?module=$MODULE&target=$BASE/t/0" | grep -q '^probe_success 1' \
        || { echo "blackbox_exporter cannot probe $BASE" >&2; exit 3; }
    DRIVER_PORT=$(free_port)
    gen_config "$D/driver" "$DRIVER_PORT" "$BASE" "127.0.0.1:$BB_PORT" "$MODULE" > "$D/driver/tend.toml"
    BB_CPU0=$(cpu_of "$BB_PID")
    "$TEND" monitor --config "$D/driver/tend.toml" > "$D/driver/tend.log" 2>&1 & DRIVER_PID=$!; PIDS+=("$DRIVER_PID")
    wait_port "$DRIVER_PORT"
    sleep "$DURATION"
    alive "$DRIVER_PID" "the driver (tend)" "$D/driver/tend.log"
    alive "$BB_PID" blackbox_exporter "$D/bb.log"
    curl -s --max-time 10 "http://127.0.0.1:$DRIVER_PORT/metrics" > "$D/driver/metrics.txt"
    BB_CPU=$(awk -v a="$(cpu_of "$BB_PID")" -v b="$BB_CPU0" 'BEGIN {printf "%.2f", a-b}')
    BB_RSS=$(rss_of "$BB_PID")
    DRIVER_CPU=$(cpu_of "$DRIVER_PID")
    kill "$DRIVER_PID" "$BB_PID"; wait "$DRIVER_PID" "$BB_PID" 2>/dev/null || true
    read_metrics "$D/driver/metrics.txt"
    BB_CHECKS=$CHECKS BB_UP=$UP D_P50=$P50 D_P99=$P99
    [[ "$BB_CHECKS" != 0 ]] || { echo "the driver reported no probes; its log:" >&2; tail -20 "$D/driver/tend.log" >&2; exit 1; }
    echo "$PROTO blackbox: probes=$BB_CHECKS probe_success=$BB_UP cpu_s=$BB_CPU (exporter only) peak_rss_mb=$BB_RSS" \
         "(driver: lag_p50_ms=$(ms "$D_P50") lag_p99_ms=$(ms "$D_P99") cpu_s=$DRIVER_CPU, not counted)"

    SUMMARY+=("$(awk -v proto="$PROTO" -v tc="$TEND_CPU" -v tn="$TEND_CHECKS" -v tu="$TEND_UP" -v bc="$BB_CPU" \
        -v bn="$BB_CHECKS" -v bu="$BB_UP" -v p99="$TEND_P99" -v tr="$TEND_RSS" -v br="$BB_RSS" -v n="$TARGETS" \
        -v iv="${INTERVAL%s}" -v d="$DURATION" -v pf="$PAGE_FIRST" -v pl="$PAGE_LAST" 'BEGIN {
      t = tc * 1000 / tn; b = bc * 1000 / bn; expected = n * d / iv;
      printf "%-5s  checks tend %d (%.0f%% of %d scheduled, %d up), blackbox %d (%d up); CPU-s per 1000 checks tend %.3f, blackbox %.3f: ratio %.2f; tend lag p99 %.1f ms; peak RSS tend %s MiB, blackbox %s MiB; status page %s ms (first page), %s ms (last page)",
        proto, tn, 100 * tn / expected, expected, tu, bn, bu, t, b, t / b, p99 * 1000, tr, br, pf, pl }')")
done

echo "== summary (a fresh connection per check on both sides; goal: ratio <= 0.5, lag p99 < 1 s, RSS < 150 MiB, every scheduled check done)"
printf '%s\n' "${SUMMARY[@]}"
