#!/bin/sh
# Runs the cgroup tests and one container on a pure cgroup v2 kernel (tools/cgroup2-vm, in this repository).
#   crates/runtime/tests/cgroup2_vm.sh            (root; from the repository root)
# Checks: the v2 unit tests (fake tree and the real hierarchy), then `berth runtime run` of a
# bundle with a cgroup namespace, memory/pids/cpu limits and Docker's seccomp profile: the
# container sees itself at the root of its cgroup namespace, its limits, a read-only cgroup2
# mount, only the standard devices (the eBPF device program), and its exit code comes back.
set -eu
cd "$(dirname "$0")/../../.."
VM=${CGROUP2_VM:-$PWD/tools/cgroup2-vm/run.sh}
cargo build -p berth
T=$(cargo test -p runtime --lib --no-run 2>&1 | grep -o 'target/debug/deps/runtime-[a-f0-9]*' | head -1)
"$VM" --add "$T:/t" -- /t --test-threads=1 cgroup

B=$(mktemp -d /tmp/berth-vm.XXXXXX)
trap 'rm -rf "$B"' EXIT
mkdir -p "$B/rootfs/bin"
cp /bin/busybox "$B/rootfs/bin/"
for a in sh cat grep mknod head; do ln -s busybox "$B/rootfs/bin/$a"; done
target/debug/berth runtime spec sh -c 'cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; grep " /sys/fs/cgroup " /proc/self/mountinfo; grep Seccomp: /proc/self/status; head -c1 /dev/zero >/dev/null && echo zero-ok; mknod /dev/tty1x c 4 1 && { echo >/dev/tty1x && echo tty1-open || echo tty1-denied; }; exit 7' |
python3 -c '
import json, sys
c = json.load(sys.stdin)
c["linux"]["namespaces"].append({"type": "cgroup"})
c["linux"]["resources"].update({"memory": {"limit": 33554432}, "pids": {"limit": 20}, "cpu": {"quota": 20000, "period": 100000}})
c["linux"]["cgroupsPath"] = "/berth/vm1"
json.dump(c, sys.stdout)' > "$B/config.json"
OUT=$("$VM" --add target/debug/berth:/usr/local/bin/berth --add "$B:/b" -- \
    sh -c 'berth runtime run --seccomp-cache /tmp/sc --bundle /b vm1; echo "exit=$?"; test -e /sys/fs/cgroup/berth/vm1 && echo leaked || echo removed')
echo "$OUT"
for want in '0::/' 33554432 '^20$' '20000 100000' '- cgroup2 cgroup ' 'Seccomp:	2' zero-ok 'tty1x: Operation not permitted' tty1-denied 'exit=7' removed; do
    echo "$OUT" | grep -q -- "$want" || { echo "FAIL: missing $want"; exit 1; }
done
# The whole differential suite (runc vs the built-in runtime) on cgroup v2.
D=$(cargo test -p runtime --test differential --no-run 2>&1 | grep -o 'target/debug/deps/differential-[a-f0-9]*' | head -1)
"$VM" --add "$D:/d" --add "$(command -v runc)" -- /d --test-threads=1
echo "cgroup2 VM: ok"
