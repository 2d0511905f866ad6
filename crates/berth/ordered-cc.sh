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
set -euo pipefail
order=
args=()
for a in "$@"; do
    case $a in
    -Wl,--symbol-ordering-file=*) order=${a#-Wl,--symbol-ordering-file=} ;;
    *) args+=("$a") ;;
    esac
done
[ -n "$order" ] || exec cc "$@"
out=
prev=
for a in "${args[@]}"; do
    [ "$prev" = -o ] && out=$a
    prev=$a
done
[ -n "$out" ] || exec cc "$@"
cc "${args[@]}"
python3 "$(dirname "$0")/resolve-order.py" "$order" "$out" >"$out.order"
exec cc "${args[@]}" "-Wl,--symbol-ordering-file=$out.order"
