#!/usr/bin/env bash
# The shim's CPU per MB of container output written to its json-file (or local) log, through the real docker CLI
# against `berth daemon` (private root, busybox image imported from Debian's busybox-static):
#   1. short lines: `yes` (two-byte lines, the worst case: one log entry per two bytes);
#   2. long lines: 100-byte lines;
# each MB MiB as fast as the container can write them, with Docker's json-file rotation (max-size=10m,
# max-file=3). Reports the CPU (user+sys) the shim and the daemon spent, in ms per MiB of output and the
# log bytes that output became, against a reference measured in the same run: busybox `cat` copying the
# same bytes from a pipe to a file (the floor for moving them at all).
#
#   bench/shim_logs.sh [MB]   (root; installs busybox-static if missing)
#   BERTH=target/debug/berth bench/shim_logs.sh   to use another build (skips cargo build)
#   LOG_DRIVER=local bench/shim_logs.sh           the local driver instead (rotated files gzipped)
set -euo pipefail
MB=${1:-200}
DRIVER=${LOG_DRIVER:-json-file}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

[ -x /bin/busybox ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
command -v docker >/dev/null || { echo "missing: docker (the CLI)" >&2; exit 2; }
if [ -z "${BERTH:-}" ]; then
    (cd "$ROOT" && cargo build --release -p berth >/dev/null 2>&1) || (cd "$ROOT" && cargo build --release -p berth)
    BERTH=$ROOT/target/release/berth
fi

T=$(mktemp -d /tmp/bl.XXXX)          # short: the daemon's and the shims' unix sockets live under it
DAEMON_PID=
export DOCKER_HOST=unix://$T/s DOCKER_CONFIG=$T/dc
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
cleanup() {
    docker rm -f $(docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

"$BERTH" daemon --data-root "$T/data" --exec-root "$T/exec" -H "unix://$T/s" >"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
mkdir -p "$T/rootfs/bin" "$T/rootfs/tmp" && cp /bin/busybox "$T/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$T/rootfs/bin/$a"; done
tar -C "$T/rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks
HZ=$(getconf CLK_TCK)
BYTES=$((MB * 1024 * 1024))

# One run: the container writes $BYTES of lines made by $1 (a shell pipeline), then DONE on stderr, then
# sleeps; the shim's CPU is read once DONE is in the log.
measure() {
    local name=$1 gen=$2 id shim d0 log
    d0=$(ticks "$DAEMON_PID")
    id=$(docker run -d --name "$name" --log-driver "$DRIVER" --log-opt max-size=10m --log-opt max-file=3 busybox \
        sh -c "$gen | head -c $BYTES; echo DONE >&2; exec sleep 1000")
    shim=$(pgrep -f " shim --id $id")
    local done_mark='"DONE\\n","stream":"stderr"'
    if [ "$DRIVER" = local ]; then
        log=$T/data/containers/$id/local-logs/container.log
        done_mark=DONE
    else
        log=$(docker inspect -f '{{.LogPath}}' "$name")
    fi
    local t0=$SECONDS
    until grep -aq "$done_mark" "$log" 2>/dev/null; do
        sleep 0.2
        [ $((SECONDS - t0)) -lt 600 ] || { echo "$name: no DONE after 600 s" >&2; exit 1; }
    done
    local s d
    s=$(ticks "$shim")
    d=$(( $(ticks "$DAEMON_PID") - d0 ))
    local logbytes
    logbytes=$(cat "$log"* | wc -c)
    docker rm -f "$name" >/dev/null
    # ms per MiB of output; the log bytes per output byte of the last files (the rest rotated away).
    awk -v s="$s" -v d="$d" -v hz="$HZ" -v mb="$MB" -v n="$name" -v lb="$logbytes" -v t="$((SECONDS - t0))" \
        'BEGIN { printf "%-12s shim %6.1f ms/MiB   daemon %6.1f ms/MiB   (%d s wall; kept log %.1f MiB)\n",
                 n, s * 1000 / hz / mb, d * 1000 / hz / mb, t, lb / 1048576 }'
}

# Reference: the same bytes through a pipe into a file, by busybox cat.
reference() {
    local name=$1 gen=$2
    local t
    t=$( { /usr/bin/time -f '%U %S' busybox sh -c "$gen | head -c $BYTES | busybox cat > $T/ref.out" ; } 2>&1 >/dev/null | tail -1)
    awk -v t="$t" -v mb="$MB" -v n="$name" 'BEGIN { split(t, a, " "); printf "%-12s whole pipeline %6.1f ms/MiB (yes + head + cat, user+sys)\n", n, (a[1] + a[2]) * 1000 / mb }'
}

LONG="yes $(printf 'x%.0s' $(seq 99))"
echo "== $MB MiB of output, $DRIVER max-size=10m max-file=3; BERTH=$BERTH"
measure short yes
measure long "$LONG"
if command -v /usr/bin/time >/dev/null; then
    reference ref-short yes
    reference ref-long "$LONG"
else
    echo "(reference skipped: /usr/bin/time is not installed; apt-get install time)"
fi
