#!/usr/bin/env bash
# Benchmark: pull and push of an image of 8 uncompressed layers (512 MiB in all by default) against a local
# Debian `docker-registry` (distribution 2.8), with Berth (`berth` against `berth daemon`), Debian's dockerd
# (the docker CLI) and skopeo (registry <-> OCI layout), side by side in one run; plus `berth load` of a
# `berth save` archive of the same image, and the disk's own fsync'd write rate measured in the same runs.
# Everything runs in a network namespace of its own (loopback only).
#
# The disk rate is `dd conv=fsync` of a file as big as the image, of random bytes (a virtual disk may
# write zeros for free), into the directory that holds the daemons' data roots, once per run: this
# machine's disk rate swings run to run, so each figure is a median over the same runs.
# The disk of these machines is a virtual one that writes ~1.3 GB/s when rested and slows to 0.3-0.8
# GB/s for a while after a few gigabytes (seen: 537 MB took 0.39 s, then 2.1 s right after 1 GB more,
# and 0.42 s again 30 s later). So every timed step starts after `sync` and BENCH_REST seconds of rest
# (default 30): each meets the disk in the same, rested state, none pays for the step before it.
# skopeo stores pulled layers as they come (`--dest-oci-accept-uncompressed-layers`) but gzips
# uncompressed ones when it pushes to a registry (skopeo 1.9 has no way not to); dockerd gzips every
# layer it pushes. With BENCH_LAYERS=gzip the registry holds gzip layers (seeded by skopeo), so all
# three move the same gzip blobs and none compresses on push.
# Usage: bench/registry.sh [RUNS] [TOTAL_MIB]     (root; BERTH_BIN=path overrides the release build;
#        BENCH_DOCKERD=0 leaves dockerd out; BENCH_LAYERS=plain|gzip, default plain; BENCH_REST=seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${2:-512}
# plain: the registry holds the layers uncompressed, as made (uploaded with curl); gzip: as skopeo
# pushes them (it gzips uncompressed layers), so every tool moves gzip blobs.
kind=${BENCH_LAYERS:-plain}
rest=${BENCH_REST:-30}

if [ -z "${BERTH_BENCH_NETNS:-}" ]; then
    export BERTH_BENCH_NETNS=1
    exec unshare -n "$0" "$@"
fi
ip link set lo up 2>/dev/null || busybox ip link set lo up

for p in skopeo docker-registry; do
    command -v "$p" >/dev/null || { echo "$p is required (apt-get install skopeo docker-registry)" >&2; exit 1; }
done
if [ -n "${BERTH_BIN:-}" ]; then
    berth=$BERTH_BIN
else
    cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
    berth=$PWD/target/release/berth
fi

work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
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
elapsed() { echo "$2 - $1" | bc; }

start_registry() { # PORT NAME: a fresh registry storage each time
    local dir=$work/reg-$2
    mkdir -p "$dir"
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$dir/data" "$1" >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" 2>"$dir/log" &
    pids+=($!)
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.05; done
}
stop_last() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

start_daemon() { # NAME -> sets $sock
    local root=$work/$1
    "$berth" daemon --bridge none --data-root "$root/data" --exec-root "$root/exec" -H "unix://$root/sock" 2>"$root.log" &
    pids+=($!)
    for _ in $(seq 200); do [ -S "$root/sock" ] && break; sleep 0.05; done
    sock=unix://$root/sock
}

# The image: an OCI layout of 8 random (incompressible) uncompressed layers, made here with coreutils.
echo "making an image of 8 layers, ${mib} MiB in all..."
layout=$work/layout
case $kind in plain | gzip) ;; *) echo "BENCH_LAYERS is plain or gzip" >&2; exit 1 ;; esac
mkdir -p "$layout/blobs/sha256"
blob() { # FILE -> "digest size", moved into the layout
    local d s
    d=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1")
    mv "$1" "$layout/blobs/sha256/$d"
    echo "$d $s"
}
layers=""; diffs=""
for i in $(seq 8); do
    mkdir -p "$work/l$i"
    head -c "$(((mib << 20) / 8))" /dev/urandom >"$work/l$i/layer$i.bin"
    tar -C "$work/l$i" -cf "$work/l$i.tar" .
    read -r d s < <(blob "$work/l$i.tar")
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$d\",\"size\":$s}"
    diffs+="${diffs:+,}\"sha256:$d\""
done
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" >"$work/config.json"
read -r cd cs < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cd" "$cs" "$layers" >"$work/manifest.json"
read -r md ms < <(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$md" "$ms" >"$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
size=$(du -sb "$layout/blobs" | cut -f1)

# The disk's own rate: random bytes from the page cache to a file on the data roots' filesystem, fsync'd.
head -c "$((mib << 20))" /dev/urandom >"$work/random"
settle() { sync; sleep "$rest"; }
dd_once() {
    dd if="$work/random" of="$work/dd" bs=1M conv=fsync 2>"$work/dd.log"
    awk '/copied/ {for (i = 1; i <= NF; i++) if ($i ~ /s,$/) t = $(i - 1)} END {print t}' "$work/dd.log"
    rm -f "$work/dd"
}

dockerd=${BENCH_DOCKERD:-1}
if [ "$dockerd" = 1 ]; then
    command -v dockerd >/dev/null && command -v docker >/dev/null ||
        { echo "dockerd and docker are required (apt-get install docker.io), or BENCH_DOCKERD=0" >&2; exit 1; }
    # As bench/build.sh: a root and containerd namespace of its own, no networking set-up.
    mkdir -p "$work/dockerd"
    dockerd --data-root "$work/dockerd/data" --exec-root "$work/dockerd/exec" -H "unix://$work/dockerd/sock" \
        --pidfile "$work/dockerd/pid" --bridge none --iptables=false --ip6tables=false \
        --containerd-namespace berthbench --containerd-plugins-namespace berthbench-plugins \
        >"$work/dockerd.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 400); do [ -S "$work/dockerd/sock" ] && break; sleep 0.05; done
    [ -S "$work/dockerd/sock" ] || { echo "dockerd did not start: $(tail -3 "$work/dockerd.log")" >&2; exit 1; }
    docker_() { docker -H "unix://$work/dockerd/sock" "$@"; }
fi

start_registry 5100 src
if [ "$kind" = gzip ]; then
    # skopeo gzips uncompressed layers on the way to a registry.
    skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$layout:1" docker://127.0.0.1:5100/bench:1 >/dev/null
else
    # The layout's blobs uploaded as they are (monolithic uploads), then its manifest.
    base=http://127.0.0.1:5100/v2/bench
    for f in "$layout"/blobs/sha256/*; do
        loc=$(curl -fsS -X POST -D - -o /dev/null "$base/blobs/uploads/" | tr -d '\r' |
            awk 'tolower($1) == "location:" {print $2}')
        case $loc in http*) ;; *) loc=http://127.0.0.1:5100$loc ;; esac
        case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
        curl -fsS -T "$f" -H 'Content-Type: application/octet-stream' "$loc${sep}digest=sha256:$(basename "$f")" >/dev/null
    done
    curl -fsS -T "$layout/blobs/sha256/$md" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        "$base/manifests/1" >/dev/null
fi

pull_t=(); sk_pull_t=(); push_t=(); sk_push_t=(); load_t=(); dk_pull_t=(); dk_push_t=(); disk_t=()
for i in $(seq "$runs"); do
    settle
    disk_t+=("$(dd_once)")
    start_daemon "d$i"; d=$sock
    settle; t0=$(now); "$berth" -H "$d" pull -q 127.0.0.1:5100/bench:1 >/dev/null; t1=$(now)
    pull_t+=("$(elapsed "$t0" "$t1")")

    rm -rf "$work/sk"; settle
    t0=$(now); skopeo --insecure-policy copy -q --src-tls-verify=false --dest-oci-accept-uncompressed-layers \
        docker://127.0.0.1:5100/bench:1 "oci:$work/sk:1" >/dev/null; t1=$(now)
    sk_pull_t+=("$(elapsed "$t0" "$t1")")

    start_registry 5200 "push$i"
    "$berth" -H "$d" tag 127.0.0.1:5100/bench:1 127.0.0.1:5200/bench:1
    settle; t0=$(now); "$berth" -H "$d" push -q 127.0.0.1:5200/bench:1 >/dev/null; t1=$(now)
    push_t+=("$(elapsed "$t0" "$t1")")
    stop_last

    start_registry 5200 "skpush$i"
    settle; t0=$(now); skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/sk:1" docker://127.0.0.1:5200/bench:1 >/dev/null; t1=$(now)
    sk_push_t+=("$(elapsed "$t0" "$t1")")
    stop_last

    if [ "$dockerd" = 1 ]; then
        docker_ rmi -f 127.0.0.1:5100/bench:1 127.0.0.1:5200/bench:1 >/dev/null 2>&1 || true
        settle; t0=$(now); docker_ pull -q 127.0.0.1:5100/bench:1 >/dev/null; t1=$(now)
        dk_pull_t+=("$(elapsed "$t0" "$t1")")
        start_registry 5200 "dkpush$i"
        docker_ tag 127.0.0.1:5100/bench:1 127.0.0.1:5200/bench:1
        settle; t0=$(now); docker_ push -q 127.0.0.1:5200/bench:1 >/dev/null; t1=$(now)
        dk_push_t+=("$(elapsed "$t0" "$t1")")
        stop_last
    fi

    "$berth" -H "$d" save -o "$work/save.tar" 127.0.0.1:5100/bench:1
    start_daemon "l$i"
    settle; t0=$(now); "$berth" -H "$sock" load -q -i "$work/save.tar" >/dev/null; t1=$(now)
    load_t+=("$(elapsed "$t0" "$t1")")
    stop_last; stop_last
    rm -rf "$work/d$i" "$work/l$i" "$work/save.tar"
done

ms() { printf '%s\n' "$@" | median; }
rate() { echo "scale=0; $size / $1 / 1000000" | bc; }
p=$(ms "${pull_t[@]}"); sp=$(ms "${sk_pull_t[@]}"); u=$(ms "${push_t[@]}"); su=$(ms "${sk_push_t[@]}"); l=$(ms "${load_t[@]}")
disk=$(ms "${disk_t[@]}")
echo
echo "image: $((size / 1000000)) MB in 8 layers ($kind in the registry), ${runs} runs each, medians"
echo "  (pull ${pull_t[*]} | skopeo pull ${sk_pull_t[*]} | push ${push_t[*]} | skopeo push ${sk_push_t[*]} | load ${load_t[*]}"
echo "   | dockerd pull ${dk_pull_t[*]:-} | dockerd push ${dk_push_t[*]:-} | dd ${disk_t[*]})"
printf '%-40s %8.2f s  %6s MB/s\n' "berth pull" "$p" "$(rate "$p")"
printf '%-40s %8.2f s  %6s MB/s\n' "skopeo copy docker:// -> oci:" "$sp" "$(rate "$sp")"
if [ "$dockerd" = 1 ]; then
    dp=$(ms "${dk_pull_t[@]}")
    printf '%-40s %8.2f s  %6s MB/s\n' "dockerd pull (docker CLI)" "$dp" "$(rate "$dp")"
fi
printf '%-40s %8.2f s  %6s MB/s\n' "berth push" "$u" "$(rate "$u")"
printf '%-40s %8.2f s  %6s MB/s\n' "skopeo copy oci: -> docker://" "$su" "$(rate "$su")"
if [ "$dockerd" = 1 ]; then
    du_=$(ms "${dk_push_t[@]}")
    printf '%-40s %8.2f s  %6s MB/s\n' "dockerd push (docker CLI, gzips)" "$du_" "$(rate "$du_")"
fi
printf '%-40s %8.2f s  %6s MB/s\n' "berth load (berth save archive)" "$l" "$(rate "$l")"
printf '%-40s %8.2f s  %6s MB/s\n' "dd conv=fsync, random bytes (the disk)" "$disk" "$(echo "scale=0; $mib * 1048576 / $disk / 1000000" | bc)"
if [ "$dockerd" = 1 ]; then
    printf 'vs dockerd: pull %.2fx, push %.2fx\n' "$(echo "$dp / $p" | bc -l)" "$(echo "$du_ / $u" | bc -l)"
fi
printf 'ratios: pull %.2fx skopeo, push %.2fx skopeo (target >= 2); pull %.2f, load %.2f of the disk rate (target >= 0.8)\n' \
    "$(echo "$sp / $p" | bc -l)" "$(echo "$su / $u" | bc -l)" \
    "$(echo "$disk / $p * $size / ($mib * 1048576)" | bc -l)" "$(echo "$disk / $l * $size / ($mib * 1048576)" | bc -l)"
# The disk's rate drifts with what else the machine does: each run's own dd against the same run's
# pull and load, then the median of those ratios.
pr=(); lr=()
for i in "${!disk_t[@]}"; do
    pr+=("$(echo "${disk_t[$i]} / ${pull_t[$i]} * $size / ($mib * 1048576)" | bc -l)")
    lr+=("$(echo "${disk_t[$i]} / ${load_t[$i]} * $size / ($mib * 1048576)" | bc -l)")
done
printf 'paired with each run'"'"'s dd (median): pull %.2f, load %.2f of the disk rate\n' "$(ms "${pr[@]}")" "$(ms "${lr[@]}")"
