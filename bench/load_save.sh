#!/usr/bin/env bash
# Benchmark: `berth save` and `berth load` of an image with a 512 MiB layer, in MB/s, against `skopeo copy`
# of the same archive into an OCI layout, measured in the same run; plus the daemon's idle RSS.
# Usage: bench/load_save.sh [RUNS] [LAYER_MIB]      (root; installs skopeo if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${2:-512}

command -v skopeo >/dev/null || { apt-get update -qq && apt-get install -y -qq skopeo >/dev/null; }
cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
berth=$PWD/target/release/berth

work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start_daemon() { # NAME -> sets $sock, appends pid
    local root=$work/$1
    "$berth" daemon --data-root "$root/data" --exec-root "$root/exec" -H "unix://$root/sock" 2>"$root.log" &
    pids+=($!)
    for _ in $(seq 200); do [ -S "$root/sock" ] && break; sleep 0.05; done
    sock=unix://$root/sock
}

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "making a ${mib} MiB layer..."
mkdir -p "$work/rootfs/data"
head -c "$((mib << 20))" /dev/urandom >"$work/rootfs/data/blob"
start_daemon src
src_pid=${pids[-1]}
sleep 0.5
idle_rss=$(rss_kb "$src_pid")
tar -C "$work/rootfs" -c . | "$berth" -H "$sock" import - bench/big:1 >/dev/null
src_sock=$sock

save_t=(); load_t=(); skopeo_t=()
for i in $(seq "$runs"); do
    rm -f "$work/save.tar"; sync
    t0=$(now); "$berth" -H "$src_sock" save -o "$work/save.tar" bench/big:1; t1=$(now)
    save_t+=("$(echo "$t1 - $t0" | bc)")
    size=$(stat -c %s "$work/save.tar")

    start_daemon "dst$i"
    t0=$(now); "$berth" -H "$sock" load -q -i "$work/save.tar" >/dev/null; t1=$(now)
    load_t+=("$(echo "$t1 - $t0" | bc)")
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; rm -rf "$work/dst$i"

    rm -rf "$work/oci"
    t0=$(now); skopeo copy -q "docker-archive:$work/save.tar" "oci:$work/oci:big" >/dev/null; t1=$(now)
    skopeo_t+=("$(echo "$t1 - $t0" | bc)")
done
loaded_rss=$(rss_kb "$src_pid")

mb=$(echo "scale=1; $size / 1000000" | bc)
ms() { printf '%s\n' "$@" | median; }
s_save=$(ms "${save_t[@]}"); s_load=$(ms "${load_t[@]}"); s_sk=$(ms "${skopeo_t[@]}")
rate() { echo "scale=0; $size / $1 / 1000000" | bc; }
echo
echo "archive: ${mb} MB, ${runs} runs each, medians (all runs: save ${save_t[*]} | load ${load_t[*]} | skopeo ${skopeo_t[*]})"
printf '%-36s %8.2f s  %6s MB/s\n' "berth save" "$s_save" "$(rate "$s_save")"
printf '%-36s %8.2f s  %6s MB/s\n' "berth load" "$s_load" "$(rate "$s_load")"
printf '%-36s %8.2f s  %6s MB/s\n' "skopeo copy docker-archive: -> oci:" "$s_sk" "$(rate "$s_sk")"
printf 'ratio to skopeo (higher is faster):   save %.2fx   load %.2fx\n' "$(echo "$s_sk / $s_save" | bc -l)" "$(echo "$s_sk / $s_load" | bc -l)"
echo "daemon RSS: idle ${idle_rss} kB, after import+saves ${loaded_rss} kB (target: idle <= 8 MB)"
