# Shared by bench/cluster.sh and bench/monitor_cluster.sh (sourced, not run): the cleanup of every process in
# PID (an associative array the script declares) and of WORK, loopback helpers, and a three-member etcd.

cleanup() {
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done   # TERM: nginx stops its workers too
    sleep 1
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${KEEP:-}" ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 3; }

# start_etcd3: members m1..m3 in $WORK, healthy on return; sets CPORT[1..3] (client ports), PID[etcd1..3] and
# ENDPOINTS ("http://127.0.0.1:P1", "http://127.0.0.1:P2", ... as a TOML array's inside).
start_etcd3() {
    declare -ga CPORT PPORT
    local initial="" i
    for i in 1 2 3; do CPORT[$i]=$(free_port); PPORT[$i]=$(free_port); initial+="m$i=http://127.0.0.1:${PPORT[$i]},"; done
    ENDPOINTS=""
    for i in 1 2 3; do
        etcd --name "m$i" --data-dir "$WORK/m$i.etcd" \
            --listen-client-urls "http://127.0.0.1:${CPORT[$i]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
            --initial-cluster "${initial%,}" --initial-cluster-state new > "$WORK/m$i.log" 2>&1 &
        PID[etcd$i]=$!
        ENDPOINTS+="\"http://127.0.0.1:${CPORT[$i]}\", "
    done
    ENDPOINTS=${ENDPOINTS%, }
    for i in 1 2 3; do wait_http "http://127.0.0.1:${CPORT[$i]}/health"; done
}
