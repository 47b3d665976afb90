#!/usr/bin/env bash
# The website monitor benchmark's cluster mode (`CLUSTER=1 bench/monitor.sh` runs it): TARGETS (30,000) HTTP
# targets on one local nginx, every INTERVAL (10 s), each check a fresh connection, checked
#
#   1. by one `tend monitor` alone (no cluster): CPU seconds per 1000 checks, lag p99;
#   2. by three `tend run` replicas sharing a three-member etcd (Debian's etcd-server) on loopback, the targets
#      shared out among them: the replicas' CPU seconds per 1000 checks together (measured once the three are
#      members and one interval has passed), each one's checks and lag p99;
#   3. then kill -9 one replica: the takeover time, from the kill to the moment every target has been hit again
#      (from nginx's access log, `$msec $uri` per request), with `lease = LEASE`.
#
# Prints the CPU-per-check ratio cluster / alone (goal ≤ 1.3), the lag p99 of each (goal < 1 s) and the takeover
# time (bound: interval + lease + 2 s).
#
# Run:   cargo build --release && CLUSTER=1 bench/monitor.sh
# Env:   TARGETS (30000) INTERVAL (10s) TIMEOUT (2s) DURATION (60, seconds) LEASE (5) CONCURRENCY (512)
#        TEND (default ${CARGO_TARGET_DIR:-target}/release/tend); KEEP=1 keeps the work directory.
# Needs: etcd-server, nginx (apt-get install -y etcd-server nginx).
set -euo pipefail

TARGETS=${TARGETS:-30000}
INTERVAL=${INTERVAL:-10s}
DURATION=${DURATION:-60}
DURATION=${DURATION%s}
LEASE=${LEASE:-5}
TIMEOUT=${TIMEOUT:-2s}
CONCURRENCY=${CONCURRENCY:-512}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEND=${TEND:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tend}
WORK=$(mktemp -d /tmp/tend-monitor-cluster.XXXXXX)
declare -A PID

source "$(dirname "$0")/cluster_lib.sh"
trap cleanup EXIT

[[ -x "$TEND" ]] || { echo "tend binary not found at $TEND: cargo build --release (or TEND=/path)" >&2; exit 2; }
command -v etcd >/dev/null || { echo "etcd not found: apt-get install -y etcd-server" >&2; exit 2; }
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[[ -n "$NGINX" ]] || { echo "nginx not found: apt-get install -y nginx" >&2; exit 2; }

cpu_of() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }
metric() { curl -s --max-time 10 "http://127.0.0.1:$1/metrics" \
    | awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"([{]|$)" && (l == "" || index($1, l)) {s += $2} END {printf "%.10g", s}'; }
sum() { awk '{s += $1} END {printf "%.2f", s}'; }

# --- etcd and nginx ----------------------------------------------------------------------------------------
start_etcd3
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    log_format hits '\$msec \$uri';
    access_log $WORK/nginx/access.log hits buffer=256k flush=1s;
    client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
    server { listen 127.0.0.1:$NGINX_PORT; location / { default_type text/plain; return 200 "ok"; } }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2> "$WORK/nginx/stderr.log" & PID[nginx]=$!
wait_http "http://127.0.0.1:$NGINX_PORT/"

# config NAME PORT CLUSTER(0|1)
config() {
    printf '[store]\npath = "%s/%s/tend.db"\n[web]\nlisten = "127.0.0.1:%s"\n[log]\nlevel = "warning"\n' "$WORK" "$1" "$2"
    if [[ "$3" == 1 ]]; then
        printf '[cluster]\netcd = [%s]\nname = "%s"\nlease = "%ss"\nprefix = "/bench"\n' "$ENDPOINTS" "$1" "$LEASE"
    fi
    printf '[monitor]\ninterval = "%s"\ntimeout = "%s"\nconcurrency = %s\n' "$INTERVAL" "$TIMEOUT" "$CONCURRENCY"
    python3 - "$TARGETS" "$NGINX_PORT" <<'PY'
import sys
n, port = int(sys.argv[1]), sys.argv[2]
sys.stdout.write("".join(f'[[monitor.target]]\nname = "t{i:05d}"\nurl = "http://127.0.0.1:{port}/t/{i}"\n' for i in range(n)))
PY
}

echo "== $TARGETS HTTP targets every $INTERVAL, fresh connections, ${DURATION}s measured; etcd lease ${LEASE}s"

# --- 1. one replica alone ------------------------------------------------------------------------------------
mkdir -p "$WORK/alone"
PORT=$(free_port)
config alone "$PORT" 0 > "$WORK/alone/tend.toml"
"$TEND" monitor --config "$WORK/alone/tend.toml" > "$WORK/alone/tend.log" 2>&1 & PID[alone]=$!
wait_http "http://127.0.0.1:$PORT/metrics"
sleep "${INTERVAL%s}"
C0=$(metric "$PORT" tend_monitor_checks_total); U0=$(cpu_of "${PID[alone]}")
sleep "$DURATION"
C1=$(metric "$PORT" tend_monitor_checks_total); U1=$(cpu_of "${PID[alone]}")
ALONE_P99=$(metric "$PORT" tend_monitor_schedule_lag_seconds 'quantile="0.99"')
kill "${PID[alone]}"; wait "${PID[alone]}" 2>/dev/null || true; unset 'PID[alone]'
ALONE_CHECKS=$(awk -v a="$C1" -v b="$C0" 'BEGIN {print a-b}')
ALONE_CPU=$(awk -v a="$U1" -v b="$U0" 'BEGIN {printf "%.2f", a-b}')
ALONE_PER=$(awk -v c="$ALONE_CPU" -v n="$ALONE_CHECKS" 'BEGIN {printf "%.3f", 1000*c/n}')
echo "alone:   checks=$ALONE_CHECKS cpu_s=$ALONE_CPU cpu_s_per_1000=$ALONE_PER lag_p99_ms=$(awk -v x="$ALONE_P99" 'BEGIN {printf "%.1f", x*1000}')"

# --- 2. three replicas on etcd -------------------------------------------------------------------------------
declare -A WPORT
for n in tend-a tend-b tend-c; do
    mkdir -p "$WORK/$n"; WPORT[$n]=$(free_port)
    config "$n" "${WPORT[$n]}" 1 > "$WORK/$n/tend.toml"
    "$TEND" run --config "$WORK/$n/tend.toml" > "$WORK/$n/tend.log" 2>&1 & PID[$n]=$!
done
for n in tend-a tend-b tend-c; do wait_http "http://127.0.0.1:${WPORT[$n]}/api/cluster"; done
for _ in $(seq 1 600); do
    ok=1
    for n in tend-a tend-b tend-c; do
        m=$(curl -s "http://127.0.0.1:${WPORT[$n]}/api/cluster" | python3 -c 'import sys,json; print(len(json.load(sys.stdin).get("members",[])))' 2>/dev/null || echo 0)
        [[ "$m" == 3 ]] || ok=0
    done
    [[ $ok == 1 ]] && break; sleep 0.2
done
[[ $ok == 1 ]] || { echo "the three replicas never saw each other" >&2; exit 3; }
sleep $(( ${INTERVAL%s} * 2 ))   # every target's next slot sees the three members; the first states are shared
declare -A CB UB CA UA P99
for n in tend-a tend-b tend-c; do CB[$n]=$(metric "${WPORT[$n]}" tend_monitor_checks_total); UB[$n]=$(cpu_of "${PID[$n]}"); done
sleep "$DURATION"
for n in tend-a tend-b tend-c; do
    CA[$n]=$(metric "${WPORT[$n]}" tend_monitor_checks_total); UA[$n]=$(cpu_of "${PID[$n]}")
    P99[$n]=$(metric "${WPORT[$n]}" tend_monitor_schedule_lag_seconds 'quantile="0.99"')
    echo "cluster $n: checks=$(awk -v a="${CA[$n]}" -v b="${CB[$n]}" 'BEGIN {print a-b}') cpu_s=$(awk -v a="${UA[$n]}" -v b="${UB[$n]}" 'BEGIN {printf "%.2f", a-b}') lag_p99_ms=$(awk -v x="${P99[$n]}" 'BEGIN {printf "%.1f", x*1000}')"
done
CL_CHECKS=$(for n in tend-a tend-b tend-c; do awk -v a="${CA[$n]}" -v b="${CB[$n]}" 'BEGIN {print a-b}'; done | sum)
CL_CPU=$(for n in tend-a tend-b tend-c; do awk -v a="${UA[$n]}" -v b="${UB[$n]}" 'BEGIN {print a-b}'; done | sum)
CL_PER=$(awk -v c="$CL_CPU" -v n="$CL_CHECKS" 'BEGIN {printf "%.3f", 1000*c/n}')
CL_P99=$(for n in tend-a tend-b tend-c; do echo "${P99[$n]}"; done | sort -g | tail -1)
EXPECTED=$(awk -v t="$TARGETS" -v d="$DURATION" -v i="${INTERVAL%s}" 'BEGIN {print int(t*d/i)}')
echo "cluster: checks=$CL_CHECKS (one interval's worth per target: $EXPECTED) cpu_s=$CL_CPU cpu_s_per_1000=$CL_PER"

# --- 3. kill -9 one replica: time until every target is hit again ------------------------------------------------
KILLED_AT=$(date +%s.%N)
kill -9 "${PID[tend-b]}"; unset 'PID[tend-b]'
sleep $(( ${INTERVAL%s} + LEASE + 8 ))
TAKEOVER=$(awk -v t="$KILLED_AT" -v n="$TARGETS" '$1 >= t { if (!($2 in first)) { first[$2] = $1; seen++ } }
    END { m = 0; for (u in first) if (first[u] - t > m) m = first[u] - t;
          if (seen < n) printf "%d of %d targets never hit again", n - seen, n; else printf "%.1f", m }' "$WORK/nginx/access.log")

echo "== summary"
echo "CPU-s per 1000 checks: alone $ALONE_PER, three replicas $CL_PER: ratio $(awk -v a="$CL_PER" -v b="$ALONE_PER" 'BEGIN {printf "%.2f", a/b}') (goal <= 1.3)"
echo "lag p99: alone $(awk -v x="$ALONE_P99" 'BEGIN {printf "%.1f", x*1000}') ms, cluster (worst replica) $(awk -v x="$CL_P99" 'BEGIN {printf "%.1f", x*1000}') ms (goal < 1000 ms)"
echo "takeover after kill -9 of one replica: every target hit again within ${TAKEOVER} s (bound: interval ${INTERVAL} + lease ${LEASE}s + 2 s)"
