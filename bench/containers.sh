#!/usr/bin/env bash
# Container benchmark through the real docker CLI against `berth daemon` (private root, busybox image
# imported from Debian's busybox-static), with bare `runc run` of the same rootfs as the reference
# measured in the same run:
#   1. `docker run --rm --network none busybox true`: default seccomp profile and seccomp=unconfined,
#      and `berth run --rm` (Berth's own CLI), vs bare `runc run` (no seccomp, and with Docker's default
#      profile from `berth runtime spec`);
#   2. 50 x `run -d busybox sleep 1000` (default bridge network) one after another (wall time), with the
#      docker CLI and with the berth CLI, `docker ps` with 50 running,
#      daemon RSS idle and with 50 running, shims' PSS, `docker rm -f` of all 50, and a leak check
#      (shim processes, mounts under the temp root, container cgroup directories);
#   3. with them running: `exec … true` and `stats --no-stream` through the docker CLI and the berth CLI.
# Prints medians, p10-p90 spread, ratios to runc, and a summary with the PERF.md targets.
#
#   bench/containers.sh [RUNS] [COUNT]   (root; installs busybox-static, hyperfine, runc if missing)
#   BERTH=target/debug/berth bench/containers.sh   to use another build (skips cargo build)
set -euo pipefail
RUNS=${1:-20}
COUNT=${2:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v runc >/dev/null || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for t in docker python3 hyperfine runc /bin/busybox; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done
if [ -z "${BERTH:-}" ]; then
    (cd "$ROOT" && cargo build --release -p berth >/dev/null 2>&1) || (cd "$ROOT" && cargo build --release -p berth)
    BERTH=$ROOT/target/release/berth
fi
BERTH=$(readlink -f "$BERTH")

T=$(mktemp -d /tmp/bb.XXXX)          # short: the daemon's and the shims' unix sockets live under it
S=$T/s
DAEMON_PID=
IDS=()
export DOCKER_HOST=unix://$S DOCKER_CONFIG=$T/dc
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

# Our shims: `berth shim ... --bundle $T/...` (other daemons may run on this machine).
our_shims() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^[^ ]*berth shim .*$T/" && echo "${p#/proc/}"
    done
    return 0
}
# Mount points under the temp root, deepest first.
our_mounts() { awk -v t="$T/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r; }
# Container cgroup directories left for the containers this script made (matched by full id).
our_cgroups() {
    local ids
    ids=$(printf '%s\n' "${IDS[@]}" "$@" | grep -E '^[0-9a-f]{64}$' | sort -u | paste -sd'|')
    [ -n "$ids" ] || return 0
    find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | grep -E "/($ids)$" | sort -r || true
}

cleanup() {
    local rc=$? p m c
    set +e
    trap - EXIT INT TERM
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        local left
        left=$(timeout 30 docker ps -aq --no-trunc 2>/dev/null)
        [ -n "$left" ] && timeout 60 docker rm -f $left >/dev/null 2>&1
        IDS+=($left)
        kill "$DAEMON_PID"
        for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    for p in $(our_shims); do kill -9 "$p" 2>/dev/null; done
    if [ -d "$T/runc-state" ]; then
        for c in $(runc --root "$T/runc-state" list -q 2>/dev/null); do
            runc --root "$T/runc-state" delete -f "$c" >/dev/null 2>&1
        done
    fi
    for c in $(our_cgroups); do
        for p in $(cat "$c/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    sleep 0.2
    for c in $(our_cgroups); do rmdir "$c" 2>/dev/null; done
    for m in $(our_mounts); do umount "$m" 2>/dev/null || umount -l "$m"; done
    if [ -n "$(our_mounts)" ]; then
        echo "cleanup: still mounted under $T, leaving it:" >&2; our_mounts >&2
    else
        rm -rf --one-file-system "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# Network namespaces the kernel still holds, removed ones included: their cleanup runs in the
# background after `rm` and slows every netns and veth operation while it lasts.
netns_alive() { awk '$1 == "net_namespace" {print $2}' /proc/slabinfo 2>/dev/null || echo 0; }
# Waits until the kernel has freed the namespaces of removed containers (their count is back to `base`,
# or has stopped falling for 2 s; at most 60 s), so that one batch does not pay for the previous one's
# teardown.
settle() {
    local base=$1 i n last=-1 still=0
    for i in $(seq 300); do
        n=$(netns_alive)
        if [ "$n" -le "$base" ] || [ "$still" -ge 10 ]; then
            echo "   (kernel netns teardown settled after $((i / 5)).$((i % 5 * 2)) s: $n namespaces, $base before)"
            return
        fi
        if [ "$n" = "$last" ]; then still=$((still + 1)); else still=0; fi
        last=$n
        sleep 0.2
    done
    echo "   (kernel netns teardown still running after 60 s: $(netns_alive) namespaces, $base before)"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# The daemon's file systems, as on a Docker host: the data root on a journaled ext4 (here an image file
# on a loop device), the exec root on tmpfs (/run). The temp dir itself may sit on an ext4 without a
# journal, as on these machines, where every inode allocation skips the inodes deleted in the last 60 to
# 360 s: after a batch of `rm`, creating a container's files there costs several ms more, which would
# measure the previous batch rather than this one. BENCH_FS=plain keeps everything in the temp dir.
if [ "${BENCH_FS:-ext4}" = ext4 ]; then
    mkdir -p "$T/d" "$T/e"
    truncate -s 4G "$T/fs.img"
    mkfs.ext4 -q -F -O ^metadata_csum "$T/fs.img"
    mount -o loop "$T/fs.img" "$T/d"
    mount -t tmpfs -o mode=0711 tmpfs "$T/e"
    echo "== data root on a journaled ext4 (loop), exec root on tmpfs"
fi

echo "== berth daemon on $T ($BERTH)"
# BENCH_TOUCHED=1: each page of the daemon's text gets a mapping of its own (bench/memory/split-text.c), so
# the breakdown after rm -f shows the text pages really executed rather than what fault-around mapped.
[ -z "${BENCH_TOUCHED:-}" ] || gcc -shared -fPIC -O2 -o "$T/split-text.so" "$ROOT/bench/memory/split-text.c"
# In a network namespace of its own: the default bridge, its subnet and firewall rules meet nobody else's
# (the CLIs reach the daemon through its unix socket all the same).
${BENCH_TOUCHED:+env LD_PRELOAD=$T/split-text.so SPLIT_TEXT=1} \
    unshare -n sh -c 'ip link set lo up && exec "$0" daemon --data-root "$1/d" --exec-root "$1/e" -H "unix://$2"' \
    "$BERTH" "$T" "$S" 2>"$T/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 200); do [ -S "$S" ] && break; kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
[ -S "$S" ] || { echo "daemon did not start:" >&2; cat "$T/daemon.log" >&2; exit 1; }
docker version --format 'docker CLI {{.Client.Version}} -> server {{.Server.Version}} (API {{.Server.APIVersion}})'
sleep 1
RSS_IDLE=$(rss_kb "$DAEMON_PID")

echo "== busybox:latest from Debian's busybox-static"
mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/tmp" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev"
cp /bin/busybox "$T/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$T/rootfs/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$T/rootfs/etc/passwd"
echo 'root:x:0:' >"$T/rootfs/etc/group"
tar -C "$T/rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
docker run --rm --network none busybox true || { echo "docker run busybox true failed" >&2; exit 1; }

# runc bundles on the same rootfs: runc's default spec (new netns like --network none, no seccomp),
# and the same with the seccomp section of Docker's default profile (from `berth runtime spec`).
mkdir -p "$T/runc" "$T/runc-sc" "$T/runc-state"
(cd "$T/runc" && runc spec)
python3 - "$T" "$("$BERTH" runtime spec true)" <<'PY'
import json, sys
t, berth_spec = sys.argv[1], json.loads(sys.argv[2])
s = json.load(open(f"{t}/runc/config.json"))
s["root"]["path"] = f"{t}/rootfs"
s["process"]["args"] = ["true"]
s["process"]["terminal"] = False
json.dump(s, open(f"{t}/runc/config.json", "w"), indent=1)
s["linux"]["seccomp"] = berth_spec["linux"]["seccomp"]
json.dump(s, open(f"{t}/runc-sc/config.json", "w"), indent=1)
PY
runc --root "$T/runc-state" run --bundle "$T/runc" bench-runc

echo "== starts: hyperfine --warmup 3 --runs $RUNS"
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$T/start.json" \
    -n "runc run (runc spec, no seccomp)" "runc --root $T/runc-state run --bundle $T/runc bench-runc" \
    -n "runc run + docker seccomp profile" "runc --root $T/runc-state run --bundle $T/runc-sc bench-runc" \
    -n "docker run --rm (berth, default seccomp)" "docker run --rm --network none busybox true" \
    -n "docker run --rm (berth, seccomp=unconfined)" "docker run --rm --network none --security-opt seccomp=unconfined busybox true" \
    -n "berth run --rm (berth CLI, default seccomp)" "$BERTH -H unix://$S run --rm --network none busybox true" \
    >/dev/null
sleep 3 # issue 9's point: after the runs and three seconds of quiet
RSS_AFTER_STARTS=$(rss_kb "$DAEMON_PID")
LEFT_AFTER_STARTS=$(docker ps -aq | wc -l)

NETNS_BASE=$(netns_alive)
echo "== $COUNT x docker run -d busybox sleep 1000, one after another (docker CLI), then rm -f"
t0=$(now)
for i in $(seq "$COUNT"); do
    IDS+=("$(docker run -d busybox sleep 1000)")
done
t1=$(now)
DOCKER_RUN_D_S=$(echo "$t1 - $t0" | bc)
docker rm -f "${IDS[@]}" >/dev/null
settle "$NETNS_BASE"

echo "== $COUNT x berth run -d busybox sleep 1000, one after another (berth CLI)"
t0=$(now)
for i in $(seq "$COUNT"); do
    IDS+=("$("$BERTH" -H "unix://$S" run -d busybox sleep 1000)")
done
t1=$(now)
RUN_D_S=$(echo "$t1 - $t0" | bc)
IDS=("${IDS[@]:$COUNT}")
sleep 1
RUNNING=$(docker ps -q | wc -l)
RSS_50=$(rss_kb "$DAEMON_PID")
SHIMS=($(our_shims))
PSS_SUM=0
for p in "${SHIMS[@]}"; do PSS_SUM=$((PSS_SUM + $(pss_kb "$p"))); done
NSHIMS=${#SHIMS[@]}
echo "running: $RUNNING, shims: $NSHIMS"

echo "== docker ps with $RUNNING running: hyperfine --warmup 3 --runs $RUNS"
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$T/ps.json" \
    -n "docker ps ($RUNNING running)" "docker ps" \
    -n "berth ps ($RUNNING running)" "$BERTH -H unix://$S ps" \
    -n "docker version (the docker CLI's own floor)" "docker version --format x" >/dev/null
PS_LINES=$(docker ps | tail -n +2 | wc -l)

echo "== exec and stats with $RUNNING running: hyperfine --warmup 3 --runs $RUNS"
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$T/exec.json" \
    -n "docker exec CTR true" "docker exec ${IDS[0]} true" \
    -n "berth exec CTR true" "$BERTH -H unix://$S exec ${IDS[0]} true" \
    -n "docker stats --no-stream CTR" "docker stats --no-stream ${IDS[0]}" \
    -n "berth stats --no-stream CTR" "$BERTH -H unix://$S stats --no-stream ${IDS[0]}" \
    >/dev/null

echo "== docker rm -f of all $COUNT"
t0=$(now)
docker rm -f "${IDS[@]}" >/dev/null
t1=$(now)
RM_S=$(echo "$t1 - $t0" | bc)
sleep 5 # issue 9's point: back to the idle figure within five seconds of the removals
RSS_AFTER_RM=$(rss_kb "$DAEMON_PID")
echo "   daemon memory by kind, 5 s after rm -f:"
python3 "$ROOT/bench/memory/pages.py" "$DAEMON_PID" "$BERTH" ${BENCH_TOUCHED:+--touched} | sed 's/^/   /'

echo "== leak check"
LEAKS=0
left=$(docker ps -aq)
[ -z "$left" ] || { echo "containers still listed:"; docker ps -a; LEAKS=1; }
left=$(our_shims)
[ -z "$left" ] || { echo "berth shim processes left:"; for p in $left; do ps -o pid,etime,args -p "$p" | tail -n +2; done; LEAKS=1; }
left=$(awk -v t="$T/" -v d="$T/d" -v e="$T/e" 'index($5, t) == 1 && $5 != d && $5 != e {print $9, $5}' /proc/self/mountinfo)
[ -z "$left" ] || { echo "mounts left under $T:"; echo "$left"; LEAKS=1; }
left=$(our_cgroups)
[ -z "$left" ] || { echo "container cgroup dirs left:"; echo "$left"; LEAKS=1; }
[ "$LEAKS" = 0 ] && echo "nothing left (no container, shim, mount under $T, or cgroup dir)"

echo
python3 - "$T/start.json" "$T/ps.json" "$T/exec.json" <<PY
import json, statistics, sys
def load(p):
    out = {}
    for r in json.load(open(p))["results"]:
        t = sorted(x * 1000 for x in r["times"])
        out[r["command"]] = (statistics.median(t), t[len(t) // 10], t[(len(t) * 9) // 10])
    return out
st, ps, ex = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
runc = st["runc run (runc spec, no seccomp)"][0]
runc_sc = st["runc run + docker seccomp profile"][0]
d_def = st["docker run --rm (berth, default seccomp)"][0]
d_unc = st["docker run --rm (berth, seccomp=unconfined)"][0]
print(f"{'start of true (runs=$RUNS)':46} {'median':>9} {'p10-p90':>17} {'vs runc':>8} {'vs runc+prof':>12}")
for name, (m, p10, p90) in st.items():
    print(f"{name:46} {m:7.2f}ms {p10:7.2f}-{p90:7.2f}ms {m / runc:7.2f}x {m / runc_sc:11.2f}x")
for name, (m, p10, p90) in list(ps.items()) + list(ex.items()):
    print(f"{name:46} {m:7.2f}ms {p10:7.2f}-{p90:7.2f}ms")
b_run = st["berth run --rm (berth CLI, default seccomp)"][0]

mb = lambda kb: f"{int(kb) / 1024:.1f} MB"
n = $NSHIMS
pss_mean = $PSS_SUM / n if n else 0
ps_m, ps_10, ps_90 = next(iter(ps.values()))
bps_m = ps[f"berth ps ($RUNNING running)"][0]
floor = ps["docker version (the docker CLI's own floor)"][0]
rows = [
    ("docker run --rm --network none busybox true", f"{d_def:.1f} ms", f"runc {runc:.1f} ms", f"{d_def / runc:.2f}x", "<= 60 ms (docker CLI)"),
    ("  same, seccomp=unconfined", f"{d_unc:.1f} ms", f"runc {runc:.1f} ms", f"{d_unc / runc:.2f}x", "<= 60 ms (docker CLI)"),
    ("  cost of the default seccomp profile", f"{d_def - d_unc:+.1f} ms", f"runc {runc_sc - runc:+.1f} ms", "", "+ <= 1 ms"),
    ("  vs runc with the docker profile", f"{d_def:.1f} ms", f"runc+prof {runc_sc:.1f} ms", f"{d_def / runc_sc:.2f}x", ""),
    ("berth run --rm --network none busybox true", f"{b_run:.1f} ms", f"runc {runc:.1f} ms", f"{b_run / runc:.2f}x", "<= 20 ms"),
    ("docker exec CTR true", f"{ex['docker exec CTR true'][0]:.1f} ms", "", "", "<= 15 ms"),
    ("berth exec CTR true", f"{ex['berth exec CTR true'][0]:.1f} ms", "", "", "<= 15 ms"),
    ("docker stats --no-stream CTR", f"{ex['docker stats --no-stream CTR'][0]:.1f} ms", "dockerd ~2 s", "", "<= 50 ms"),
    ("berth stats --no-stream CTR", f"{ex['berth stats --no-stream CTR'][0]:.1f} ms", "", "", "<= 50 ms"),
    ("daemon RSS, idle", mb($RSS_IDLE), "dockerd 76 MB+39 MB (PERF.md)", "", "<= 8 MB"),
    ("daemon RSS after the start runs and 3 s", mb($RSS_AFTER_STARTS), "", "", "<= 8 MB"),
    ("daemon RSS, $RUNNING running", mb($RSS_50), "", "", ""),
    ("daemon RSS 5 s after rm -f", mb($RSS_AFTER_RM), "", "", "<= 8 MB"),
    ("shims' PSS, sum ($NSHIMS shims)", mb($PSS_SUM), "", "", ""),
    ("shim PSS, mean per container", mb(pss_mean), "dockerd shim 2.65 MB (PERF.md)", "", "<= 0.5 MB"),
    ("$COUNT x berth run -d busybox sleep 1000", f"{$RUN_D_S:.2f} s", "dockerd 10.9 s (PERF.md)", "", "<= 1 s"),
    ("  per container", f"{$RUN_D_S * 1000 / $COUNT:.1f} ms", "", "", "<= 20 ms"),
    ("$COUNT x docker run -d (docker CLI)", f"{$DOCKER_RUN_D_S:.2f} s", "", "", ""),
    ("docker ps with $RUNNING running ($PS_LINES listed)", f"{ps_m:.1f} ms", "dockerd 23 ms (PERF.md)", "", "<= 10 ms"),
    ("berth ps with $RUNNING running", f"{bps_m:.1f} ms", f"docker CLI floor {floor:.1f} ms", "", "<= 10 ms"),
    ("docker rm -f of $COUNT", f"{$RM_S:.2f} s", "", "", ""),
    ("leaks after rm -f", "none" if $LEAKS == 0 else "SEE ABOVE", "", "", "none"),
]
print()
print(f"{'SUMMARY':50} {'Berth':>11}  {'reference':32} {'ratio':>7}  PERF.md target")
for r in rows:
    print(f"{r[0]:50} {r[1]:>11}  {r[2]:32} {r[3]:>7}  {r[4]}")
PY
[ "$LEFT_AFTER_STARTS" = 0 ] || echo "note: $LEFT_AFTER_STARTS containers were left after the --rm runs"
