#!/bin/sh
# Start latency of `true` in a busybox bundle with Docker's default spec: bare runc vs the
# built-in runtime (`berth runtime run`), without seccomp and with Docker's default profile
# (cold: cache emptied before every start; cached: program loaded from the cache).
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
print(f"seccomp cost: runc +{refs - ref:.2f} ms, berth cold +{med['berth, docker profile cold'] - med['berth, no seccomp']:.2f} ms,"
      f" berth cached +{med['berth, docker profile cached'] - med['berth, no seccomp']:.2f} ms")
PY
