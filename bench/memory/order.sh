#!/usr/bin/env bash
# Writes crates/berth/text-order.txt: the functions the daemon runs, from uprobes on every function of a
# release build (bench/memory/uprobes.py), first those of start-up and five `docker run --rm`, then those
# of 50 `docker run -d`, what bench/containers.sh does with them running (ps, exec,
# stats, run --rm, through the docker CLI and berth's), and their `rm -f`. Rebuild afterwards (`cargo build --release -p berth`) and check
# with bench/memory.sh.
#
#   bench/memory/order.sh [BINARY]   (root; default target/release/berth)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BERTH=$(readlink -f "${1:-$ROOT/target/release/berth}")
OUT=$ROOT/crates/berth/text-order.txt
T=$(mktemp -d /tmp/bo.XXXX)
S=$T/s
cleanup() {
    [ -n "${P:-}" ] && kill "$P" 2>/dev/null && sleep 1
    python3 "$ROOT/bench/memory/uprobes.py" remove
    rm -rf "$T"
}
trap cleanup EXIT
python3 "$ROOT/bench/memory/uprobes.py" add "$BERTH"
: >"$OUT.new"
unshare -n sh -c 'ip link set lo up && exec "$0" daemon --data-root "$1/d" --exec-root "$1/e" -H "unix://$2"' \
    "$BERTH" "$T" "$S" 2>"$T/daemon.log" &
for _ in $(seq 400); do [ -S "$S" ] && break; sleep 0.05; done
P=$(pgrep -f "daemon --data-root $T/d" | head -1)
export DOCKER_HOST=unix://$S DOCKER_CONFIG=$T/dc
mkdir -p "$T/rootfs/bin"
cp /bin/busybox "$T/rootfs/bin/"
for a in sh true sleep; do ln -sf busybox "$T/rootfs/bin/$a"; done
tar -C "$T/rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
for _ in 1 2 3 4 5; do docker run --rm --network none busybox true; done
sleep 3
python3 "$ROOT/bench/memory/uprobes.py" read "$BERTH" "$OUT.new"
ids=()
for _ in $(seq 50); do ids+=("$(docker run -d busybox sleep 1000)"); done
# What bench/containers.sh also does with them running, through both CLIs.
for _ in 1 2 3; do
    docker ps >/dev/null
    "$BERTH" -H "unix://$S" ps >/dev/null
    docker exec "${ids[0]}" true
    "$BERTH" -H "unix://$S" exec "${ids[0]}" true
    docker stats --no-stream "${ids[0]}" >/dev/null
    "$BERTH" -H "unix://$S" stats --no-stream "${ids[0]}" >/dev/null
    docker run --rm --network none --security-opt seccomp=unconfined busybox true
    "$BERTH" -H "unix://$S" run --rm --network none busybox true
done
ids+=("$("$BERTH" -H "unix://$S" run -d busybox sleep 1000)")
docker rm -f "${ids[@]}" >/dev/null
sleep 5
python3 "$ROOT/bench/memory/uprobes.py" read "$BERTH" "$OUT.new"
mv "$OUT.new" "$OUT"
echo "$(wc -l <"$OUT") functions in $OUT"
