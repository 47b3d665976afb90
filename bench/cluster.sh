#!/usr/bin/env bash
# Cluster benchmark: three `tend run` replicas on a three-member etcd (Debian's etcd-server) on loopback, with
# the AWS emulator (moto) as their shared cloud and `lease = "5s"`.
#
#   1. Failover: KILLS times (default 10), kill -9 the leader and time until another replica records its
#      first scaling decision (read from its SQLite store); the killed replica is started again before the
#      next round. Prints every time, the median and the max.
#   2. etcd load: the replicas monitor TARGETS (default 10000) targets on a local nginx, all up, at a 60 s and
#      then a 10 s interval, DURATION seconds each (default 60); etcd's own request counters
#      (grpc_server_handled_total on each member's /metrics) give requests per second. With checks shared
#      out, state written on changes only, the rate must not grow with the check rate.
#
# Run:   cargo build --release && bench/cluster.sh
# Env:   KILLS (10) TARGETS (10000; 0 skips part 2) DURATION (60) TEND (default ${CARGO_TARGET_DIR:-target}/release/tend)
#        KEEP=1 keeps the work directory (configs, logs, stores).
# Needs: etcd-server, nginx (apt-get install -y etcd-server nginx), moto (scripts/test makes the venv).
set -euo pipefail

KILLS=${KILLS:-10}
TARGETS=${TARGETS:-10000}
DURATION=${DURATION:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEND=${TEND:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tend}
VENV=${TEND_TEST_VENV:-/var/cache/tend-test/venv}
WORK=$(mktemp -d /tmp/tend-cluster-bench.XXXXXX)
LEASE=5
declare -A PID

source "$(dirname "$0")/cluster_lib.sh"
trap cleanup EXIT

[[ -x "$TEND" ]] || { echo "tend binary not found at $TEND: cargo build --release (or TEND=/path)" >&2; exit 2; }
command -v etcd >/dev/null || { echo "etcd not found: apt-get install -y etcd-server" >&2; exit 2; }
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[[ -n "$NGINX" ]] || { echo "nginx not found: apt-get install -y nginx" >&2; exit 2; }
[[ -x "$VENV/bin/moto_server" ]] || { echo "moto not found in $VENV: run scripts/test once" >&2; exit 2; }

now_ms() { date +%s%3N; }

# --- etcd, moto, nginx ---------------------------------------------------------------------------------------
start_etcd3
MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$WORK/moto.log" 2>&1 & PID[moto]=$!
wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/"
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
    server { listen 127.0.0.1:$NGINX_PORT; location / { default_type text/plain; return 200 "ok"; } }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2> "$WORK/nginx/stderr.log" & PID[nginx]=$!
wait_http "http://127.0.0.1:$NGINX_PORT/"

# --- replicas ----------------------------------------------------------------------------------------------
# config NAME PORT TARGETS INTERVAL
config() {
    cat <<TOML
[store]
path = "$WORK/$1/tend.db"
[web]
listen = "127.0.0.1:$2"
[log]
level = "info"
[cluster]
etcd = [$ENDPOINTS]
name = "$1"
lease = "${LEASE}s"
prefix = "/bench"
[cloud]
provider = "aws"
prefix = "web"
[cloud.aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:$MOTO_PORT"
image_id = "ami-12c6146b"
instance_type = "t3.micro"
[scale]
interval = "1s"
min = 1
max = 4
TOML
    if [[ "$3" -gt 0 ]]; then
        printf '[monitor]\ninterval = "%s"\ntimeout = "5s"\n' "$4"
        python3 -c "
import sys
for i in range($3):
    print(f'[[monitor.target]]\nname = \"t{i:05d}\"\nurl = \"http://127.0.0.1:$NGINX_PORT/t/{i}\"')"
    fi
}
declare -A WEB
start() { # start NAME
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$TEND" run --config "$WORK/$1/tend.toml" \
        >> "$WORK/$1/tend.log" 2>&1 &
    PID[$1]=$!
}
setup() { # setup TARGETS INTERVAL: (re)writes the configs and starts the three replicas
    for n in tend-a tend-b tend-c; do
        mkdir -p "$WORK/$n"
        WEB[$n]=${WEB[$n]:-$(free_port)}
        config "$n" "${WEB[$n]}" "$1" "$2" > "$WORK/$n/tend.toml"
        start "$n"
    done
    for n in tend-a tend-b tend-c; do wait_http "http://127.0.0.1:${WEB[$n]}/api/cluster"; done
}
leader() { curl -s "http://127.0.0.1:${WEB[$1]}/api/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"] or "")' 2>/dev/null || true; }
first_decision_after() { # first_decision_after NAME MS: the time (ms) of NAME's first decision at or after MS, or empty
    python3 - "$WORK/$1/tend.db" "$2" <<'PY'
import sqlite3, sys
try:
    c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=1)
    r = c.execute("SELECT MIN(at) FROM scale_decisions WHERE at >= ?", (int(sys.argv[2]),)).fetchone()
    print(r[0] if r and r[0] is not None else "")
except Exception:
    print("")
PY
}

# --- 1. failover ---------------------------------------------------------------------------------------------
setup 0 60s
echo "== failover: kill -9 the leader, time until another replica records its first decision (lease ${LEASE}s), $KILLS times"
TIMES=()
for k in $(seq 1 "$KILLS"); do
    L=""
    for _ in $(seq 1 300); do L=$(leader tend-a); [[ -n "$L" ]] && [[ "$(leader tend-b)" == "$L" ]] && [[ "$(leader tend-c)" == "$L" ]] && break; L=""; sleep 0.1; done
    [[ -n "$L" ]] || { echo "no agreed leader" >&2; exit 4; }
    sleep 2
    T0=$(now_ms)
    kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null || true
    T1=""
    for _ in $(seq 1 600); do
        for n in tend-a tend-b tend-c; do
            [[ "$n" == "$L" ]] && continue
            t=$(first_decision_after "$n" "$T0")
            [[ -n "$t" ]] && { [[ -z "$T1" || "$t" -lt "$T1" ]] && T1=$t; }
        done
        [[ -n "$T1" ]] && break
        sleep 0.05
    done
    [[ -n "$T1" ]] || { echo "no decision by another replica within 30 s of killing $L" >&2; exit 4; }
    MS=$((T1 - T0)); TIMES+=("$MS")
    echo "  kill $k: $L killed, first decision by another replica after $(awk -v m="$MS" 'BEGIN {printf "%.2f", m/1000}') s"
    start "$L"
    wait_http "http://127.0.0.1:${WEB[$L]}/api/cluster"
done
printf '%s\n' "${TIMES[@]}" | sort -n | awk -v lease="$LEASE" '{a[NR]=$1} END {
  m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2;
  printf "failover (kill -9 of the leader -> first decision by the new one), %d kills, lease %ds: median %.2f s, max %.2f s\n", NR, lease, m/1000, a[NR]/1000 }'
for n in tend-a tend-b tend-c; do kill "${PID[$n]}" 2>/dev/null || true; wait "${PID[$n]}" 2>/dev/null || true; done

# --- 2. etcd load ----------------------------------------------------------------------------------------------
[[ "$TARGETS" -gt 0 ]] || exit 0
etcd_requests() { # the sum of grpc_server_handled_total over the three members
    for i in 1 2 3; do curl -s "http://127.0.0.1:${CPORT[$i]}/metrics"; done \
        | awk '/^grpc_server_handled_total/ {s += $NF} END {printf "%d", s}'
}
rate() { # rate INTERVAL: etcd requests per second while the replicas check TARGETS targets every INTERVAL
    setup "$TARGETS" "$1"
    sleep 10
    local r0 t0 r1 t1
    r0=$(etcd_requests); t0=$(now_ms)
    sleep "$DURATION"
    r1=$(etcd_requests); t1=$(now_ms)
    local checks=0
    for n in tend-a tend-b tend-c; do
        c=$(curl -s "http://127.0.0.1:${WEB[$n]}/metrics" | awk '/^tend_monitor_checks_total/ {s += $NF} END {printf "%d", s}')
        checks=$((checks + c))
    done
    for n in tend-a tend-b tend-c; do kill "${PID[$n]}" 2>/dev/null || true; wait "${PID[$n]}" 2>/dev/null || true; done
    awk -v r="$((r1 - r0))" -v ms="$((t1 - t0))" -v iv="$1" -v c="$checks" \
        'BEGIN {printf "  %s interval: %.1f etcd requests/s (%d checks done by the three replicas in all)\n", iv, r * 1000 / ms, c}'
}
echo "== etcd load: 3 replicas, $TARGETS targets (all up), ${DURATION}s at each interval"
rate 60s
rate 10s
