#!/bin/sh
# Start latency of `true` in a busybox bundle with Docker's default spec: bare runc, bare crun (when
# installed) and the built-in runtime (`berth runtime run`), without seccomp and with Docker's default
# profile (cold: cache emptied before every start; cached: program loaded from the cache).
# Debian's crun 1.8.1 refuses this host's hybrid cgroup layout, so it runs inside
# `unshare -m … umount /sys/fs/cgroup/unified` (PERF.md); that wrapper alone is measured too ("crun wrapper")
# so its cost can be taken off crun's figures.
# Prints medians, spread and ratios to runc measured in the same run.
#
#   bench/runtime_start.sh [RUNS]        (root; needs runc, busybox-static, hyperfine, python3)
#   BERTH=target/debug/berth bench/runtime_start.sh   to use another build
set -eu
RUNS=${1:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BERTH=${BERTH:-$ROOT/target/release/berth}
[ -x "$BERTH" ] || (cd "$ROOT" && cargo build --release -p berth)
for t in runc hyperfine python3 /bin/busybox; do
    command -v "$t" >/dev/null || { echo "missing: $t (apt-get install runc busybox-static hyperfine)"; exit 2; }
done

W=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkbundle() { # DIR [--no-seccomp]
    mkdir -p "$1/rootfs/bin"
    cp /bin/busybox "$1/rootfs/bin/busybox"
    ln -s busybox "$1/rootfs/bin/true"
    ln -s busybox "$1/rootfs/bin/sh"
    "$BERTH" runtime spec $2 true > "$1/config.json"
}
mkbundle "$W/plain" --no-seccomp
mkbundle "$W/seccomp" ""
CACHE="$W/cache"

# --prepare is given once per command: only the cold case empties the cache.
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$W/r.json" \
    --prepare true --prepare true --prepare true --prepare "rm -rf $CACHE" --prepare true \
    -n "runc, no seccomp"             "runc run --bundle $W/plain bench-runc" \
    -n "runc, docker profile"         "runc run --bundle $W/seccomp bench-runc" \
    -n "berth, no seccomp"            "$BERTH runtime run --seccomp-cache $CACHE --bundle $W/plain bench-berth" \
    -n "berth, docker profile cold"   "$BERTH runtime run --seccomp-cache $CACHE --bundle $W/seccomp bench-berth" \
    -n "berth, docker profile cached" "$BERTH runtime run --seccomp-cache $CACHE --bundle $W/seccomp bench-berth" \
    >/dev/null

if command -v crun >/dev/null; then
    wrap="unshare -m --propagation private sh -c"
    hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$W/c.json" \
        -n "crun wrapper alone"   "$wrap 'umount /sys/fs/cgroup/unified 2>/dev/null; true'" \
        -n "crun, no seccomp"     "$wrap 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun run --bundle $W/plain bench-crun'" \
        -n "crun, docker profile" "$wrap 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun run --bundle $W/seccomp bench-crun'" \
        >/dev/null
    python3 - "$W/r.json" "$W/c.json" <<'PY2'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
a["results"] += b["results"]
json.dump(a, open(sys.argv[1], "w"))
PY2
fi

python3 - "$W/r.json" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: statistics.median(r["times"]) * 1000 for r in res}
ref = med["runc, no seccomp"]
refs = med["runc, docker profile"]
print(f"{'start of true':32} {'median':>9} {'p10-p90':>15} {'vs runc':>8} {'vs runc+profile':>16}")
for r in res:
    t = sorted(x * 1000 for x in r["times"])
    p10, p90 = t[len(t) // 10], t[(len(t) * 9) // 10]
    m = med[r["command"]]
    print(f"{r['command']:32} {m:7.2f}ms {p10:6.2f}-{p90:6.2f}ms {m / ref:7.2f}x {m / refs:15.2f}x")
if "crun wrapper alone" in med:
    w = med["crun wrapper alone"]
    for k in ("crun, no seccomp", "crun, docker profile"):
        print(f"{k + ' - wrapper':32} {med[k] - w:7.2f}ms {'':>15} {(med[k] - w) / ref:7.2f}x {(med[k] - w) / refs:15.2f}x")
    print(f"berth with the docker profile (cached) vs crun without seccomp (wrapper taken off): "
          f"{med['berth, docker profile cached'] / (med['crun, no seccomp'] - w):.2f}x")
print(f"seccomp cost: runc +{refs - ref:.2f} ms, berth cold +{med['berth, docker profile cold'] - med['berth, no seccomp']:.2f} ms,"
      f" berth cached +{med['berth, docker profile cached'] - med['berth, no seccomp']:.2f} ms")
PY
