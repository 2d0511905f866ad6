#!/usr/bin/env bash
# The shim's CPU per MB of container output written to its json-file (or local) log, through the real docker CLI
# against `berth daemon` (private root, busybox image imported from Debian's busybox-static):
#   1. short lines: `yes` (two-byte lines, the worst case: one log entry per two bytes);
#   2. long lines: 100-byte lines;
# each MB MiB as fast as the container can write them, with Docker's json-file rotation (max-size=10m,
# max-file=3), --network none. Reports the CPU (user+sys) the shim and the daemon spent, in ms per MiB of
# output and the log bytes that output became, against references measured in the same run:
#   - Debian's dockerd 20.10 on a private root (its own containerd, as dockerd starts it), the same image, the
#     same container and log options: the logging path there is containerd-shim-runc-v2 (copies the
#     container's pipes into FIFOs) plus dockerd (reads the FIFOs, writes the log), so those two are measured
#     as Berth's shim and daemon are (containerd, which only creates and starts, is shown apart);
#   - busybox `cat` copying the same bytes from a pipe to a file (the floor for moving them at all).
#
#   bench/shim_logs.sh [MB]   (root; installs busybox-static if missing)
#   BERTH=target/debug/berth bench/shim_logs.sh   to use another build (skips cargo build)
#   LOG_DRIVER=local bench/shim_logs.sh           the local driver instead (rotated files gzipped), both engines
#   DOCKERD=0 bench/shim_logs.sh                  Berth alone (dockerd is also skipped when not installed)
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
# Uprobes on the binary (bench/memory/uprobes.py traces which functions run) trap on every probed call: the
# shim's CPU came out 200x too high under them. They hold the file's inode, so a copy runs without them.
for ev in /sys/kernel/tracing/uprobe_events /sys/kernel/debug/tracing/uprobe_events; do
    if [ -r "$ev" ] && grep -qF " $(realpath "$BERTH"):" "$ev"; then
        echo "$BERTH has uprobes attached ($ev): copy it elsewhere (cp, not ln) and pass the copy as BERTH" >&2
        exit 2
    fi
done
WITH_DOCKERD=${DOCKERD:-1}
if [ "$WITH_DOCKERD" = 1 ] && ! command -v dockerd >/dev/null; then
    echo "(dockerd reference skipped: dockerd is not installed; apt-get install docker.io, see bench/build.sh)"
    WITH_DOCKERD=0
fi

T=$(mktemp -d /tmp/bl.XXXX)          # short: the daemons' and the shims' unix sockets live under it
DAEMON_PID= DOCKERD_PID=
export DOCKER_CONFIG=$T/dc
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
berth() { DOCKER_HOST=unix://$T/s docker "$@"; }
dockerd_cli() { DOCKER_HOST=unix://$T/d/sock docker "$@"; }
stop_daemon() { # PID: SIGTERM, then wait for it (dockerd stops its containerd and unmounts its layers)
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || return 0
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    berth rm -f $(berth ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    [ -z "$DOCKERD_PID" ] || dockerd_cli rm -f $(dockerd_cli ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    stop_daemon "$DAEMON_PID"
    stop_daemon "$DOCKERD_PID"
    # Whatever a daemon killed hard left mounted under the bench's root, deepest first.
    awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$T"
}
trap cleanup EXIT

wait_cli() { # CLI NAME: until the daemon answers
    for _ in $(seq 300); do "$1" version >/dev/null 2>&1 && return; sleep 0.1; done
    echo "$2 did not answer in 30 s" >&2; exit 1
}
"$BERTH" daemon --data-root "$T/data" --exec-root "$T/exec" -H "unix://$T/s" >"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
if [ "$WITH_DOCKERD" = 1 ]; then
    # No networking of its own (the containers use --network none); a containerd namespace of its own.
    mkdir -p "$T/d"
    dockerd --data-root "$T/d/data" --exec-root "$T/d/exec" -H "unix://$T/d/sock" --pidfile "$T/d/pid" \
        --bridge none --iptables=false --ip6tables=false \
        --containerd-namespace shimbench --containerd-plugins-namespace shimbench-plugins \
        >"$T/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
fi
wait_cli berth "berth daemon"
[ -z "$DOCKERD_PID" ] || wait_cli dockerd_cli dockerd
mkdir -p "$T/rootfs/bin" "$T/rootfs/tmp" && cp /bin/busybox "$T/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$T/rootfs/bin/$a"; done
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
berth import -c 'CMD ["sh"]' "$T/rootfs.tar" busybox:latest >/dev/null
[ -z "$DOCKERD_PID" ] || dockerd_cli import -c 'CMD ["sh"]' "$T/rootfs.tar" busybox:latest >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks
sum_ticks() { local p n=0; for p; do n=$((n + $(ticks "$p"))); done; echo "$n"; }
HZ=$(getconf CLK_TCK)
BYTES=$((MB * 1024 * 1024))
declare -A TOTAL   # ENGINE/NAME -> shim + daemon ticks

# Until the processes' CPU has not moved for two half-seconds in a row: what follows DONE (the shim's and
# the daemon's last bookkeeping) is counted too, on a machine where they may wait for a core.
settle() {
    local prev=-1 cur still=0
    for _ in $(seq 120); do
        cur=$(sum_ticks "$@")
        if [ "$cur" = "$prev" ]; then still=$((still + 1)); else still=0; fi
        [ "$still" -lt 2 ] || return 0
        prev=$cur
        sleep 0.5
    done
}

# One run on ENGINE: the container writes $BYTES of lines made by GEN (a shell pipeline), then DONE on
# the same stdout (dockerd copies stdout and stderr apart, so a DONE on stderr is logged while megabytes of
# stdout are still on their way), then sleeps; the shim's CPU is read once DONE is in the log and the CPU
# has settled.
measure() {
    local engine=$1 name=$2 gen=$3 cli id shim daemon ctrd= d0 c0=0 log
    if [ "$engine" = berth ]; then cli=berth daemon=$DAEMON_PID; else cli=dockerd_cli daemon=$DOCKERD_PID; fi
    if [ "$engine" = dockerd ]; then
        ctrd=$(pgrep -P "$DOCKERD_PID" -x containerd) || { echo "dockerd started no containerd of its own" >&2; exit 1; }
        c0=$(ticks "$ctrd")
    fi
    d0=$(ticks "$daemon")
    id=$("$cli" run -d --name "$name" --network none --log-driver "$DRIVER" --log-opt max-size=10m \
        --log-opt max-file=3 busybox sh -c "$gen | head -c $BYTES; echo DONE; exec sleep 1000")
    if [ "$engine" = berth ]; then
        shim=$(pgrep -f " shim --id $id")
    else
        shim=$(pgrep -f "containerd-shim-runc-v2 -namespace shimbench -id $id")
    fi
    local done_mark='DONE\\n","stream":"stdout"'
    if [ "$DRIVER" = local ]; then
        if [ "$engine" = berth ]; then log=$T/data; else log=$T/d/data; fi
        log=$log/containers/$id/local-logs/container.log
        done_mark=DONE
    else
        log=$("$cli" inspect -f '{{.LogPath}}' "$name")
    fi
    local t0=$SECONDS
    until grep -aq "$done_mark" "$log" 2>/dev/null; do
        sleep 0.2
        [ $((SECONDS - t0)) -lt 1800 ] || { echo "$engine $name: no DONE after 1800 s" >&2; exit 1; }
    done
    settle "$shim" "$daemon"
    local s d c=0
    s=$(ticks "$shim")
    d=$(( $(ticks "$daemon") - d0 ))
    [ -z "$ctrd" ] || c=$(( $(ticks "$ctrd") - c0 ))
    TOTAL[$engine/$name]=$((s + d))
    local logbytes
    logbytes=$(cat "$log"* | wc -c)
    "$cli" rm -f "$name" >/dev/null
    # ms per MiB of output; the log bytes per output byte of the last files (the rest rotated away).
    awk -v s="$s" -v d="$d" -v c="$c" -v e="$engine" -v hz="$HZ" -v mb="$MB" -v n="$name" -v lb="$logbytes" \
        -v t="$((SECONDS - t0))" 'BEGIN {
            if (e == "berth")
                printf "%-12s shim %6.1f ms/MiB   daemon %6.1f ms/MiB   (%d s wall; kept log %.1f MiB)\n",
                    n, s * 1000 / hz / mb, d * 1000 / hz / mb, t, lb / 1048576
            else
                printf "%-12s containerd-shim-runc-v2 %6.1f ms/MiB   dockerd %6.1f ms/MiB   (containerd %.1f; %d s wall; kept log %.1f MiB)\n",
                    "dockerd " n, s * 1000 / hz / mb, d * 1000 / hz / mb, c * 1000 / hz / mb, t, lb / 1048576 }'
}

# Berth's shim + daemon against dockerd + its shim, for one line size.
compare() {
    local name=$1
    [ -n "${TOTAL[dockerd/$name]:-}" ] || return 0
    awk -v b="${TOTAL[berth/$name]}" -v k="${TOTAL[dockerd/$name]}" -v hz="$HZ" -v mb="$MB" -v n="$name" 'BEGIN {
        printf "%-12s berth shim+daemon %7.1f ms/MiB   dockerd+shim %7.1f ms/MiB   berth/dockerd %.3fx\n",
            n, b * 1000 / hz / mb, k * 1000 / hz / mb, (k > 0 ? b / k : 0) }'
}

# Reference: the same bytes through a pipe into a file, by busybox cat.
reference() {
    local name=$1 gen=$2
    local t
    t=$( { /usr/bin/time -f '%U %S' busybox sh -c "$gen | head -c $BYTES | busybox cat > $T/ref.out" ; } 2>&1 >/dev/null | tail -1)
    awk -v t="$t" -v mb="$MB" -v n="$name" 'BEGIN { split(t, a, " "); printf "%-12s whole pipeline %6.1f ms/MiB (yes + head + cat, user+sys)\n", n, (a[1] + a[2]) * 1000 / mb }'
}

LONG="yes $(printf 'x%.0s' $(seq 99))"
echo "== $MB MiB of output, $DRIVER max-size=10m max-file=3, --network none; BERTH=$BERTH"
[ -z "$DOCKERD_PID" ] || echo "   dockerd: $(dockerd --version)"
measure berth short yes
[ -z "$DOCKERD_PID" ] || measure dockerd short yes
measure berth long "$LONG"
[ -z "$DOCKERD_PID" ] || measure dockerd long "$LONG"
compare short
compare long
if command -v /usr/bin/time >/dev/null; then
    reference ref-short yes
    reference ref-long "$LONG"
else
    echo "(reference skipped: /usr/bin/time is not installed; apt-get install time)"
fi
