#!/usr/bin/env python3
"""Maps the functions a symbol-ordering file lists to the symbols a binary has (ordered-cc.sh says why).

resolve-order.py LIST BINARY > RESOLVED

A listed name the binary has is kept as it is. Any other is matched by its demangled form with the hashes
left out: v0 symbols' crate hashes (`[0123abcd…]`), legacy symbols' `::h0123…` (which hashes the crate and
the generic arguments, so it moves with both) and LTO's `.llvm.N` suffixes. A form stands for every symbol of
the binary that has it, unless it is one shared by many more copies than the list has (a legacy generic such
as `Map<I,F>::next` is one form for hundreds of instantiations): then it is dropped rather than pulling them
all in. The order of LIST is kept; what matches nothing is dropped.
"""
import re
import subprocess
import sys

HASH = re.compile(r"\[[0-9a-f]+\]|::h[0-9a-f]{16}$")
LLVM = re.compile(r"\.llvm\.\d+$")


def demangled(names):
    plain = [LLVM.sub("", n) for n in names]
    out = subprocess.run(
        ["c++filt"], input="\n".join(plain) + "\n", capture_output=True, text=True, check=True
    ).stdout.splitlines()
    if len(out) != len(names):
        sys.exit(f"resolve-order: c++filt gave {len(out)} names for {len(names)}")
    return [HASH.sub("", d) for d in out]


def main():
    listed = [l.strip() for l in open(sys.argv[1]) if l.strip()]
    nm = subprocess.run(
        ["nm", "--defined-only", sys.argv[2]], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    have = [l.split()[2] for l in nm if len(l.split()) == 3 and l.split()[1] in "tTwW"]
    present = set(have)
    by_form = {}
    for name, form in zip(have, demangled(have)):
        by_form.setdefault(form, []).append(name)
    forms = demangled(listed)
    listed_per_form = {}
    for form in forms:
        listed_per_form[form] = listed_per_form.get(form, 0) + 1
    seen = set()
    kept = mapped = 0
    for name, form in zip(listed, forms):
        copies = by_form.get(form, [])
        if name in present:
            found = [name]
            kept += 1
        elif len(copies) <= max(3, 2 * listed_per_form[form]):
            found = copies
            mapped += bool(copies)
        else:
            found = []
        for n in found:
            if n not in seen:
                seen.add(n)
                print(n)
    print(
        f"resolve-order: {kept} of {len(listed)} listed functions as named, {mapped} by their "
        f"form without crate hashes, {len(listed) - kept - mapped} gone",
        file=sys.stderr,
    )


main()
