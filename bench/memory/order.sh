#!/usr/bin/env bash
# Writes crates/berth/text-order.txt: the functions the daemon itself runs, phase by phase (start-up and five
# `docker run --rm`; then 50 `docker run -d`, what bench/containers.sh does with them running (ps, exec,
# stats, run --rm, through the docker CLI and berth's), and their `rm -f`), found with a uprobe on every
# function (bench/memory/uprobes.py).
#
# Only the daemon's own calls count: it runs from a copy of the binary, the one that is probed (uprobes
# belong to a file), and once it is up the copy's path is bind-mounted over with the original, so the shims
# and runtimes it starts from that path, like the CLIs, run the unprobed file. (Counting them too put the
# CLI's parsers and the runtime's code among the daemon's, 0.7 MB of it resident for nothing.) Removing
# 18,000 probes takes the kernel a grace period each: the script ends some fifteen minutes after the list is
# written.
#
# Rebuild afterwards (`cargo build --release -p berth`) and check with bench/memory.sh and bench/containers.sh.
#
#   bench/memory/order.sh [BINARY]   (root; default target/release/berth)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BERTH=$(readlink -f "${1:-$ROOT/target/release/berth}")
OUT=$ROOT/crates/berth/text-order.txt
T=$(mktemp -d /tmp/bo.XXXX)
P=
cleanup() {
    stop_daemon
    umount "$T/berth-daemon" 2>/dev/null || true
    python3 "$ROOT/bench/memory/uprobes.py" remove
    rm -rf "$T"
}
stop_daemon() {
    if [ -n "$P" ]; then
        local left
        left=$(timeout 30 docker ps -aq 2>/dev/null || true)
        [ -z "$left" ] || timeout 60 docker rm -f $left >/dev/null 2>&1 || true
        kill "$P" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.05; done
        P=
    fi
}
trap cleanup EXIT

# start_daemon DIR EXE: a daemon on DIR's data root in a network namespace of its own.
start_daemon() {
    local d=$1 exe=$2
    mkdir -p "$d"
    unshare -n sh -c 'ip link set lo up && exec "$0" daemon --data-root "$1/d" --exec-root "$1/e" -H "unix://$1/s"' \
        "$exe" "$d" 2>"$d/daemon.log" &
    for _ in $(seq 400); do [ -S "$d/s" ] && break; sleep 0.05; done
    [ -S "$d/s" ] || { cat "$d/daemon.log" >&2; exit 1; }
    P=$(pgrep -f "daemon --data-root $d/d" | head -1)
    export DOCKER_HOST=unix://$d/s DOCKER_CONFIG=$d/dc
    B=("$BERTH" -H "unix://$d/s")
}

# workload DIR PHASE_DONE: the two phases; PHASE_DONE runs after the first.
workload() {
    local d=$1 phase_done=$2 ids=()
    mkdir -p "$d/rootfs/bin"
    cp /bin/busybox "$d/rootfs/bin/"
    for a in sh true sleep; do ln -sf busybox "$d/rootfs/bin/$a"; done
    tar -C "$d/rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
    for _ in 1 2 3 4 5; do docker run --rm --network none busybox true; done
    sleep 3
    $phase_done
    for _ in $(seq 50); do ids+=("$(docker run -d busybox sleep 1000)"); done
    for _ in 1 2 3; do
        docker ps >/dev/null
        "${B[@]}" ps >/dev/null
        docker exec "${ids[0]}" true
        "${B[@]}" exec "${ids[0]}" true
        docker stats --no-stream "${ids[0]}" >/dev/null
        "${B[@]}" stats --no-stream "${ids[0]}" >/dev/null
        docker run --rm --network none --security-opt seccomp=unconfined busybox true
        "${B[@]}" run --rm --network none busybox true
    done
    ids+=("$("${B[@]}" run -d busybox sleep 1000)")
    docker rm -f "${ids[@]}" >/dev/null
    sleep 5
}

echo "== the daemon's calls: uprobes on its copy of the binary"
cp "$BERTH" "$T/berth-daemon"
python3 "$ROOT/bench/memory/uprobes.py" add "$T/berth-daemon"
: >"$OUT.new"
read_hits() { python3 "$ROOT/bench/memory/uprobes.py" read "$T/berth-daemon" "$OUT.new"; }
start_daemon "$T/a" "$T/berth-daemon"
mount --bind "$BERTH" "$T/berth-daemon"
workload "$T/a" read_hits
read_hits
stop_daemon
mv "$OUT.new" "$OUT"
echo "$(wc -l <"$OUT") functions in $OUT; removing the probes"
