#!/usr/bin/env bash
# The linker cargo runs in this repository (.cargo/config.toml): plain `cc`, except for the link that asks for
# a code layout (`-Wl,--symbol-ordering-file=crates/berth/text-order.txt`, the release build of berth: see
# build.rs).
#
# Why a wrapper: text-order.txt names functions by their mangled symbols, and a Rust symbol carries a hash of
# its crate, which changes whenever that crate's dependencies change (a crate added, a version moved), so a
# list taken from one build matches little of the next one. The wrapper links once without the order, reads
# the symbols that build really has, maps each listed function to them with the crate hashes left out
# (resolve-order.py), and links again with that list. A list that maps to nothing costs the layout, never the
# link.
#
# It also completes a static link (build.rs asks for `-static` for the berth binary): rustc names its unwinder
# as a shared library (`-Wl,-Bdynamic -lgcc_s`) unless the whole build is `crt-static`, which proc macros
# cannot be, and a static link must take the archive (`-lgcc_eh`) with nothing switched back to dynamic.
set -euo pipefail
order=
static=
for a in "$@"; do
    if [ "$a" = -static ]; then static=1; fi
done
args=()
for a in "$@"; do
    case $a in
    -Wl,--symbol-ordering-file=*) order=${a#-Wl,--symbol-ordering-file=} ;;
    -lgcc_s) if [ -n "$static" ]; then args+=(-lgcc_eh); else args+=("$a"); fi ;;
    -Wl,-Bdynamic) if [ -z "$static" ]; then args+=("$a"); fi ;;
    *) args+=("$a") ;;
    esac
done
[ -n "$order" ] || exec cc "${args[@]}"
out=
prev=
for a in "${args[@]}"; do
    [ "$prev" = -o ] && out=$a
    prev=$a
done
[ -n "$out" ] || exec cc "${args[@]}" "-Wl,--symbol-ordering-file=$order"
cc "${args[@]}"
python3 "$(dirname "$0")/resolve-order.py" "$order" "$out" >"$out.order"
exec cc "${args[@]}" "-Wl,--symbol-ordering-file=$out.order"
