#!/usr/bin/env bash
# Networking benchmark through the real docker CLI against `berth daemon`, the daemon running in a network
# namespace of its own (its berth0, subnet, nftables tables and host ports meet nobody else's):
#   1. TCP throughput to a published port (`-p 5001:5001`; the sink is python3 reading 1 MiB at a time, the
#      host's /usr and /lib bind-mounted read-only into a busybox container, so the sink is never the limit):
#      - to 127.0.0.1:5001: the userland proxy (DNAT skips loopback: Berth never sets route_localnet);
#      - to the bridge's address 172.17.0.1:5001: the DNAT rule (output hook), no proxy in the path;
#      - to the container's address directly (the veth, no NAT, no proxy);
#      - reference: the same sink on 127.0.0.1 in the daemon's namespace (host loopback, no container).
#      The client is python3 sending SIZE MB in 256 KiB writes; medians of RUNS transfers each.
#   2. Container start latency: `docker run --rm busybox true` on the default bridge vs `--network none`,
#      medians of STARTS runs each, and their ratio.
#
#   bench/network.sh [RUNS] [SIZE_MB] [STARTS]   (root; needs docker CLI, python3, busybox-static, nft)
#   BERTH=target/debug/berth bench/network.sh     to use another build (skips cargo build)
set -euo pipefail
RUNS=${1:-5}
SIZE=${2:-1024}
STARTS=${3:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for t in docker python3 unshare nsenter /bin/busybox; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done
if [ -z "${BERTH:-}" ]; then
    (cd "$ROOT" && cargo build --release -p berth >/dev/null 2>&1) || (cd "$ROOT" && cargo build --release -p berth)
    BERTH=$ROOT/target/release/berth
fi

T=$(mktemp -d /tmp/bn.XXXX)
S=$T/s
DAEMON_PID=
export DOCKER_HOST=unix://$S DOCKER_CONFIG=$T/dc
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

cleanup() {
    local rc=$? m
    set +e
    trap - EXIT INT TERM
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        local left
        left=$(timeout 30 docker ps -aq 2>/dev/null)
        [ -n "$left" ] && timeout 60 docker rm -f $left >/dev/null 2>&1
        kill "$DAEMON_PID"
        for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    [ -n "${HOST_SINK:-}" ] && kill -- "-$HOST_SINK" 2>/dev/null
    for m in $(awk -v t="$T/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    rm -rf --one-file-system "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== berth daemon in its own network namespace ($BERTH)"
unshare -n -- sh -c "ip link set lo up && exec $BERTH daemon --data-root $T/d --exec-root $T/e -H unix://$S" \
    2>"$T/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 200); do [ -S "$S" ] && break; kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
[ -S "$S" ] || { echo "daemon did not start:" >&2; cat "$T/daemon.log" >&2; exit 1; }
NS=/proc/$DAEMON_PID/ns/net
in_ns() { nsenter --net="$NS" "$@"; }
docker version --format 'docker CLI {{.Client.Version}} -> server {{.Server.Version}} (API {{.Server.APIVersion}})'
docker info --format 'firewall: {{.FirewallBackend.Driver}}'

mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/tmp" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev"
cp /bin/busybox "$T/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$T/rootfs/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$T/rootfs/etc/passwd"
tar -C "$T/rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null

cat >"$T/sink.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept()
    while c.recv_into(buf):
        pass
    c.close()
PY
docker run -d --name sink --dns 127.0.0.1 -p 5001:5001 -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro \
    -v "$T/sink.py:/sink.py:ro" busybox /usr/bin/python3 /sink.py 0.0.0.0 5001 >/dev/null 2>&1
CIP=$(docker inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' sink)
GW=$(docker inspect -f '{{.NetworkSettings.Networks.bridge.Gateway}}' sink)
# setsid and nsenter exec, so $! is the sink itself, leading its own process group (cleanup kills the group).
setsid nsenter --net="$NS" python3 "$T/sink.py" 127.0.0.1 5002 &
HOST_SINK=$!
sleep 0.5

cat >"$T/send.py" <<'PY'
import socket, statistics, sys, time
host, port, size_mb, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
buf = b"\0" * (256 * 1024)
rates = []
for _ in range(runs + 1):
    for attempt in range(50):
        try:
            s = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    t0 = time.perf_counter()
    for _ in range(size_mb * 4):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(60)
    while s.recv(65536):
        pass
    dt = time.perf_counter() - t0
    s.close()
    rates.append(size_mb / dt)
print(f"{statistics.median(rates[1:]):.0f}")
PY
rate() { in_ns python3 "$T/send.py" "$1" "$2" "$SIZE" "$RUNS"; }

echo "== TCP throughput, $SIZE MB per transfer, median of $RUNS (MB/s)"
LOOP=$(rate 127.0.0.1 5002)
PROXY=$(rate 127.0.0.1 5001)
DNAT=$(rate "$GW" 5001)
DIRECT=$(rate "$CIP" 5001)
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
printf '%-52s %8s MB/s\n' "host loopback (127.0.0.1, no container)" "$LOOP"
printf '%-52s %8s MB/s  x%s of loopback\n' "published port via userland proxy (127.0.0.1:5001)" "$PROXY" "$(ratio "$PROXY" "$LOOP")"
printf '%-52s %8s MB/s  x%s of loopback\n' "published port via DNAT ($GW:5001)" "$DNAT" "$(ratio "$DNAT" "$LOOP")"
printf '%-52s %8s MB/s  x%s of loopback\n' "container address directly ($CIP:5001)" "$DIRECT" "$(ratio "$DIRECT" "$LOOP")"
RULES=$(in_ns nft list chain ip berth-nat publish 2>&1 || true)
case "$RULES" in
*"dnat to $CIP:5001"*) ;;
*) echo "note: no DNAT rule found (no nft?): the DNAT figure went through the proxy" ;;
esac
docker rm -f sink >/dev/null

echo "== start latency: docker run --rm busybox true, median of $STARTS"
cat >"$T/starts.py" <<'PY'
import statistics, subprocess, sys, time
n = int(sys.argv[1])
def med(args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)
base = ["docker", "run", "--rm", "--dns", "127.0.0.1"]
# (docker warns about the loopback --dns on stderr each time; it is there so no lookup leaves the machine)
none = med(base + ["--network", "none", "busybox", "true"])
bridge = med(base + ["busybox", "true"])
user = None
subprocess.run(["docker", "network", "create", "benchnet"], check=True, stdout=subprocess.DEVNULL)
user = med(base + ["--network", "benchnet", "busybox", "true"])
print(f"--network none              {none:7.1f} ms")
print(f"default bridge              {bridge:7.1f} ms  x{bridge/none:.2f} of none")
print(f"user network (with DNS)     {user:7.1f} ms  x{user/none:.2f} of none")
PY
python3 "$T/starts.py" "$STARTS"
docker network rm benchnet >/dev/null
