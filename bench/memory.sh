#!/usr/bin/env bash
# The daemon's resident memory at the points issue 9 names: idle after start; after five
# `docker run --rm` and three seconds of quiet; with 50 running; five seconds after the 50 are removed.
# Each point is broken down by kind (berth's text, its read-only data, shared libraries, anonymous).
#
#   bench/memory.sh             release build (built if BERTH is unset)
#   bench/memory.sh --touched   also runs the daemon with bench/memory/split-text.c preloaded, which gives
#                               each page of the binary's text a VMA of its own, so fault-around maps only
#                               the pages that run: the RSS is then what a perfect code layout would cost,
#                               and the executed pages are attributed to crates.
#   (crates/berth/text-order.txt, the code layout, is written by bench/memory/order.sh.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOUCHED=${1:-}
for t in docker python3 /bin/busybox unshare nm; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done
if [ -z "${BERTH:-}" ]; then
    (cd "$ROOT" && cargo build --release -p berth >/dev/null 2>&1) || (cd "$ROOT" && cargo build --release -p berth)
    BERTH=$ROOT/target/release/berth
fi
BERTH=$(readlink -f "$BERTH")

run() {
    local mode=$1 T S P pre=() i
    T=$(mktemp -d /tmp/bm.XXXX)
    S=$T/s
    if [ "$mode" = touched ]; then
        gcc -shared -fPIC -O2 -o "$T/split-text.so" "$ROOT/bench/memory/split-text.c"
        pre=(env LD_PRELOAD="$T/split-text.so" SPLIT_TEXT=1)
    fi
    "${pre[@]}" unshare -n sh -c 'ip link set lo up && exec "$0" daemon --data-root "$1/d" --exec-root "$1/e" -H "unix://$2"' \
        "$BERTH" "$T" "$S" 2>"$T/daemon.log" &
    for _ in $(seq 200); do [ -S "$S" ] && break; sleep 0.05; done
    [ -S "$S" ] || { cat "$T/daemon.log" >&2; exit 1; }
    P=$(pgrep -f "daemon --data-root $T/d" | head -1)
    export DOCKER_HOST=unix://$S DOCKER_CONFIG=$T/dc
    local flags=()
    [ "$mode" = touched ] && flags=(--touched)
    sleep 1
    echo "-- [$mode] idle after start"; python3 "$ROOT/bench/memory/pages.py" "$P" "$BERTH" | sed -n 1,6p
    mkdir -p "$T/rootfs/bin"
    cp /bin/busybox "$T/rootfs/bin/"
    for a in sh true sleep; do ln -sf busybox "$T/rootfs/bin/$a"; done
    tar -C "$T/rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
    for i in 1 2 3 4 5; do docker run --rm --network none busybox true; done
    sleep 3
    echo "-- [$mode] after five docker run --rm and 3 s"; python3 "$ROOT/bench/memory/pages.py" "$P" "$BERTH" "${flags[@]}"
    local ids=()
    for i in $(seq 50); do ids+=("$(docker run -d busybox sleep 1000)"); done
    echo "-- [$mode] 50 running"; python3 "$ROOT/bench/memory/pages.py" "$P" "$BERTH" | sed -n 1p
    docker rm -f "${ids[@]}" >/dev/null
    sleep 5
    echo "-- [$mode] 5 s after removing the 50"; python3 "$ROOT/bench/memory/pages.py" "$P" "$BERTH" "${flags[@]}"
    echo "   threads: $(ls "/proc/$P/task" | wc -l)"
    kill "$P"
    wait 2>/dev/null || true
    rm -rf "$T"
}
run plain
[ "$TOUCHED" = --touched ] && run touched
exit 0
