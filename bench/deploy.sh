#!/usr/bin/env bash
# Deploy benchmark: the same 3 steps to N loopback sshd "hosts" with the real tend binary
# (`tend deploy --config FILE --commit SHA`, batch 10) and with ansible-playbook (ansible-core, forks 10,
# serial 10, pipelining on); wall time of each and the ratio tend/ansible, for each N, in one run.
#
# Usage: cargo build --release && bench/deploy.sh     (run as root: each host is a private sshd on 127.0.0.1)
# Env:   HOSTS="20 50"              the host counts, one rollout of each tool per count
#        TEND=/path/to/tend         the binary; default ${CARGO_TARGET_DIR:-target}/release/tend
#        ANSIBLE_VENV=DIR           venv holding ansible-core (created with pip if missing;
#                                   default ${CARGO_TARGET_DIR:-target}/ansible-venv)
#        KEEP=1                     keep the work directory (configs, logs) for inspection
set -euo pipefail

SIZES=(${HOSTS:-20 50})
N=0; for n in "${SIZES[@]}"; do [ "$n" -gt "$N" ] && N=$n; done   # sshd to start: the largest count
BATCH=10
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${ANSIBLE_VENV:-$TARGET/ansible-venv}
WORK=$(mktemp -d /tmp/tend-deploy-bench.XXXXXX)
COMMIT=0123456789abcdef0123456789abcdef01234567
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }

# --- tools ---
TEND=${TEND:-$TARGET/release/tend}
[ -x "$TEND" ] || { echo "tend binary not found at $TEND: cargo build --release (or TEND=/path)" >&2; exit 2; }
[ -x /usr/sbin/sshd ] || apt-get install -y openssh-server >/dev/null
mkdir -p /run/sshd
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
    echo "Installing ansible-core into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q ansible-core
fi

# --- N sshd on loopback ---
ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
: > "$WORK/known_hosts"
: > "$WORK/ssh_config"
PORTS=()
for i in $(seq 1 "$N"); do
    d="$WORK/sshd$i"; mkdir -p "$d"
    ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
    cp "$WORK/client_key.pub" "$d/authorized_keys"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$d/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
MaxStartups 100:30:200
LogLevel ERROR
CONF
    /usr/sbin/sshd -f "$d/sshd_config" -D -e 2>"$d/log" &
    PIDS+=($!)
    PORTS+=("$port")
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/host_key.pub")" >> "$WORK/known_hosts"
done
deadline=$(( $(date +%s) + 20 ))
for port in "${PORTS[@]}"; do
    until timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c4 <&3 | grep -q SSH-" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "sshd on port $port did not start" >&2; exit 1; }
        sleep 0.05
    done
done

# --- the same steps for both tools ---
OUT="$WORK/out"
STEP1="mkdir -p $OUT/HOST && echo $COMMIT > $OUT/HOST/REVISION"
STEP2="sleep 1"
STEP3="test -s $OUT/HOST/REVISION"
AHOST='127.0.0.1:{{ ansible_port }}'
cat > "$WORK/playbook.yml" <<CONF
- hosts: targets
  gather_facts: false
  serial: $BATCH
  tasks:
    - ansible.builtin.shell: "${STEP1//HOST/$AHOST}"
    - ansible.builtin.shell: "$STEP2"
    - ansible.builtin.shell: "${STEP3//HOST/$AHOST}"
CONF

# Both configs for the first $1 hosts.
configure() {
    local n=$1 ports=("${PORTS[@]:0:$1}")
    local hosts_toml; hosts_toml=$(printf '"127.0.0.1:%s", ' "${ports[@]}")
    cat > "$WORK/tend.toml" <<CONF
[store]
path = "$WORK/tend-$n.db"

[web]
enabled = false

[deploy]
hosts = [${hosts_toml%, }]
user = "root"
identity = "$WORK/client_key"
known_hosts = "$WORK/known_hosts"
ssh_config = "$WORK/ssh_config"
batch = $BATCH
steps = ["${STEP1//HOST/\{host\}}", "$STEP2", "${STEP3//HOST/\{host\}}"]
CONF
    {
        echo "[targets]"
        local i=0 port
        for port in "${ports[@]}"; do i=$((i+1)); echo "h$i ansible_host=127.0.0.1 ansible_port=$port"; done
        echo "[targets:vars]"
        echo "ansible_user=root"
        echo "ansible_python_interpreter=/usr/bin/python3"
        echo "ansible_ssh_private_key_file=$WORK/client_key"
        echo "ansible_ssh_common_args='-F $WORK/ssh_config -o UserKnownHostsFile=$WORK/known_hosts -o StrictHostKeyChecking=yes'"
    } > "$WORK/inventory.ini"
}

check_written() {
    local n; n=$(find "$OUT" -name REVISION 2>/dev/null | wc -l)
    [ "$n" -eq "$2" ] || { echo "$1 wrote $n of $2 files" >&2; exit 1; }
    rm -rf "$OUT"
}

# --- run: for each size, tend then ansible ---
RESULTS=()
for n in "${SIZES[@]}"; do
    configure "$n"
    t0=$(now)
    "$TEND" deploy --config "$WORK/tend.toml" --commit $COMMIT >"$WORK/tend-$n.log" 2>&1 || { cat "$WORK/tend-$n.log" >&2; exit 1; }
    t1=$(now)
    check_written tend "$n"

    t2=$(now)
    ANSIBLE_FORKS=$BATCH ANSIBLE_PIPELINING=True ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_LOCAL_TEMP="$WORK/ansible-tmp" \
        "$VENV/bin/ansible-playbook" -i "$WORK/inventory.ini" "$WORK/playbook.yml" >"$WORK/ansible-$n.log" 2>&1 \
        || { cat "$WORK/ansible-$n.log" >&2; exit 1; }
    t3=$(now)
    check_written ansible "$n"
    RESULTS+=("$n $t0 $t1 $t2 $t3")
    echo "hosts=$n done" >&2
done

python3 - "$BATCH" "${RESULTS[@]}" <<'PY'
import sys
batch, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
lines = []
for n, t0, t1, t2, t3 in rows:
    tend, ansible = float(t1) - float(t0), float(t3) - float(t2)
    print(f"hosts={n} batch/forks={batch} steps=3: tend {tend:6.2f}s  ansible {ansible:6.2f}s")
    lines.append(f"ratio tend/ansible at {n} hosts = {tend / ansible:.2f}x (goal <= 0.3x)")
print("== summary")
print("\n".join(lines))
PY
