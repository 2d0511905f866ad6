#!/usr/bin/env bash
# Benchmark: `docker build` (classic builder, the same docker CLI) against Berth and against Debian's dockerd
# 20.10, side by side in one run:
#   - a 12-step Dockerfile with a 100 MB COPY: cold (--no-cache) and fully cached;
#   - a context of 20,000 small files: upload and first build;
#   - the 12 steps fully cached again in BuildKit mode (Debian's docker 20.10 CLI, DOCKER_BUILDKIT=1), where the
#     context goes over a session and a rebuild fetches only what changed.
# Prints medians of RUNS and Berth's time as a ratio of dockerd's.
# Usage: bench/build.sh [RUNS]     (root; installs docker.io for its dockerd, started only for the bench)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}

if ! command -v dockerd >/dev/null; then
    # No package may start its service here: the bench starts dockerd itself, on a root of its own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
docker=/usr/local/bin/docker
[ -x "$docker" ] || docker=$(command -v docker)
cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth

work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    umount -R "$work/dockerd/data" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
wait_sock() { for _ in $(seq 400); do [ -S "$1" ] && return; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }

# Berth, and dockerd with no networking of its own (the builds use --network none).
mkdir -p "$work/berth" "$work/dockerd"
"$berth" daemon --data-root "$work/berth/data" --exec-root "$work/berth/exec" -H "unix://$work/berth/sock" \
    2>"$work/berth.log" &
pids+=($!)
dockerd --data-root "$work/dockerd/data" --exec-root "$work/dockerd/exec" -H "unix://$work/dockerd/sock" \
    --pidfile "$work/dockerd/pid" --bridge none --iptables=false --ip6tables=false \
    --containerd-namespace berthbench --containerd-plugins-namespace berthbench-plugins \
    >"$work/dockerd.log" 2>&1 &
pids+=($!)
# The upload's floor: a server that reads the context and discards it, answering as a finished build. What
# the docker CLI takes against it (tarring and sending 100 MB) no engine can go below.
mkdir -p "$work/discard"
python3 - "$work/discard/sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
buf = memoryview(bytearray(1 << 20))
while True:
    c, _ = s.accept()
    head = b''
    while b'\r\n\r\n' not in head:
        d = c.recv(65536)
        if not d:
            break
        head += d
    line = head.split(b'\r\n', 1)[0]
    if not (line.startswith(b'POST ') and b'/build' in line):  # the CLI's /_ping and the like
        c.sendall(b'HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK')
        c.close()
        continue
    tail = head[-5:]
    while tail != b'0\r\n\r\n':  # the chunked body's end
        n = c.recv_into(buf)
        if n == 0:
            break
        tail = (tail + bytes(buf[max(0, n - 5):n]))[-5:]
    out = b'{"aux":{"ID":"sha256:' + b'0' * 64 + b'"}}\r\n'
    c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
              + b'%x\r\n' % len(out) + out + b'\r\n0\r\n\r\n')
    c.close()
PY
pids+=($!)
wait_sock "$work/berth/sock"
wait_sock "$work/dockerd/sock"
wait_sock "$work/discard/sock"
engines=(berth dockerd)

# The same busybox image in both: a rootfs from busybox-static, imported.
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$work/rootfs/bin/$a"; done
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
for e in "${engines[@]}"; do
    DOCKER_HOST=unix://$work/$e/sock "$docker" import -c 'CMD ["sh"]' "$work/rootfs.tar" busybox:latest >/dev/null
done

# The 12-step app with a 100 MB file.
app=$work/app
mkdir -p "$app/small"
head -c 100000000 /dev/urandom >"$app/big.bin"
for i in $(seq 1 20); do echo "file $i" >"$app/small/f$i.txt"; done
cat >"$app/Dockerfile" <<'EOF'
FROM busybox:latest
ENV APP=/opt/app MODE=bench
WORKDIR /opt/app
RUN mkdir -p /opt/app/bin /opt/app/etc && echo one > /opt/app/etc/one
COPY big.bin /opt/app/data/big.bin
RUN sha256sum /opt/app/data/big.bin > /opt/app/etc/big.sha256
COPY small/ /opt/app/etc/
ENV STAGE=two
RUN for i in $(seq 1 200); do echo line $i; done > /opt/app/etc/lines.txt
WORKDIR /opt/app/bin
RUN ln -s /bin/busybox /opt/app/bin/bb && ls -la /opt/app > /opt/app/etc/listing
CMD ["sh"]
EOF
# 20,000 small files.
many=$work/many
mkdir -p "$many"
for d in $(seq 1 100); do
    mkdir -p "$many/d$d"
    for f in $(seq 1 200); do echo "$d/$f" >"$many/d$d/f$f"; done
done
printf 'FROM busybox:latest\nCOPY . /ctx/\nRUN ls -R /ctx | wc -l\n' >"$many/Dockerfile"

build() { # ENGINE CONTEXT ARGS...
    local e=$1 ctx=$2
    shift 2
    DOCKER_HOST=unix://$work/$e/sock DOCKER_BUILDKIT=0 "$docker" build -q --network none "$@" "$ctx" >/dev/null 2>"$work/build.err" || { cat "$work/build.err" >&2; return 1; }
}
timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc; }

declare -A cold cached many_t
for e in "${engines[@]}"; do
    build "$e" "$app" -t bench/app:1 # warm the page cache and the base image
    c=(); k=(); m=()
    for _ in $(seq "$runs"); do
        c+=("$(timed build "$e" "$app" --no-cache -t bench/app:1)")
        k+=("$(timed build "$e" "$app" -t bench/app:1)")
        m+=("$(timed build "$e" "$many" --no-cache -t bench/many:1)")
    done
    cold[$e]=$(printf '%s\n' "${c[@]}" | median)
    cached[$e]=$(printf '%s\n' "${k[@]}" | median)
    many_t[$e]=$(printf '%s\n' "${m[@]}" | median)
done

f=()
for _ in $(seq "$runs"); do f+=("$(timed build discard "$app" -t bench/app:1)"); done
floor=$(printf '%s\n' "${f[@]}" | median)

# BuildKit mode (`DOCKER_BUILDKIT=1`, Debian's docker 20.10 CLI, whose BuildKit client is built in): the
# context travels over the session, and a rebuild asks only for the files that changed. Fully cached.
bk_build() { # ENGINE
    DOCKER_HOST=unix://$work/$1/sock DOCKER_BUILDKIT=1 "$docker20" build -q --network none -t bench/app:bk "$app" \
        >/dev/null 2>"$work/build.err" || { cat "$work/build.err" >&2; return 1; }
}
docker20=/usr/bin/docker
declare -A bk_cached
for e in "${engines[@]}"; do
    bk_cached[$e]=n/a
    if [ -x "$docker20" ] && bk_build "$e" 2>"$work/bk-$e.err"; then
        k=()
        for _ in $(seq "$runs"); do k+=("$(timed bk_build "$e")"); done
        bk_cached[$e]=$(printf '%s\n' "${k[@]}" | median)
    else
        echo "BuildKit mode on $e: $(tail -n 3 "$work/bk-$e.err" 2>/dev/null)" >&2
    fi
done

ratio() { echo "scale=2; $1 / $2" | bc; }
printf '\n%-44s %10s %10s %8s\n' "docker build (classic), median of $runs" berth dockerd ratio
printf '%-44s %9.3fs %9.3fs %7sx\n' "12 steps, 100 MB COPY, cold (--no-cache)" "${cold[berth]}" "${cold[dockerd]}" "$(ratio "${cold[berth]}" "${cold[dockerd]}")"
printf '%-44s %9.3fs %9.3fs %7sx\n' "12 steps, fully cached" "${cached[berth]}" "${cached[dockerd]}" "$(ratio "${cached[berth]}" "${cached[dockerd]}")"
printf '%-44s %9.3fs %9.3fs %7sx\n' "20,000-file context: upload + build" "${many_t[berth]}" "${many_t[dockerd]}" "$(ratio "${many_t[berth]}" "${many_t[dockerd]}")"
printf '%-44s %9.3fs\n' "upload floor: the CLI to a discarding server" "$floor"
if [ "${bk_cached[dockerd]}" = n/a ]; then
    printf '%-44s %9ss %10s\n' "12 steps, fully cached, BuildKit mode (20.10)" "${bk_cached[berth]}" "n/a"
else
    printf '%-44s %9.3fs %9.3fs %7sx\n' "12 steps, fully cached, BuildKit mode (20.10)" "${bk_cached[berth]}" "${bk_cached[dockerd]}" "$(ratio "${bk_cached[berth]}" "${bk_cached[dockerd]}")"
fi
echo "(targets, PERF.md: cold <= 0.4x dockerd, cached <= 0.1 s; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
