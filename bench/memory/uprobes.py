"""Which of a binary's functions run: a uprobe on every function (tracefs), hit counts read back.

    python3 uprobes.py add BINARY          probes every function of BINARY (group `berthfn`)
    python3 uprobes.py read BINARY OUT     appends to OUT the functions hit since `add` (or since the last
                                           `read`) that OUT does not list yet, in address order
    python3 uprobes.py remove              removes the probes

Every process running BINARY counts (the daemon, and its shims, which are the same binary). Used by
bench/memory/order.sh to write crates/berth/text-order.txt from what really ran, not from whole pages.
"""
import os
import subprocess
import sys

T = "/sys/kernel/tracing"
GROUP = "berthfn"


def functions(binary):
    loads = []
    for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "E" in f[6:-1]:
            loads.append((int(f[2], 16), int(f[4], 16), int(f[1], 16)))  # vaddr, filesz, offset
    out = []
    for line in subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True).stdout.splitlines():
        f = line.split(" ", 2)
        # Not the AVX-512 (EVEX-encoded) variants of glibc's string functions and BLAKE3's: a probe steps the
        # first instruction out of line, and this kernel steps an EVEX one wrongly. A probed
        # `__memset_avx512_unaligned_erms` left new threads' TLS unzeroed, and the daemon aborted ("current
        # thread handle already set during thread spawn").
        if len(f) == 3 and ("avx512" in f[2] or "evex" in f[2]):
            continue
        if len(f) == 3 and f[1] in "tTwW":
            a = int(f[0], 16)
            for v, sz, off in loads:
                if v <= a < v + sz:
                    out.append((a, a - v + off, f[2]))
    return out


def add(binary):
    if not os.path.exists(f"{T}/uprobe_events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", T], check=True)
    # Probes of an earlier run still being removed (a grace period each: minutes) would be taken for ours,
    # and that removal, which disables the whole group, would disable ours half-way: wait for it (reading
    # the events waits while the kernel removes), then refuse if any are left.
    if any(l.startswith(f"p:{GROUP}/") for l in open(f"{T}/uprobe_events")):
        sys.exit(f"probes of group {GROUP} are still registered: `python3 {sys.argv[0]} remove` first")
    with open(f"{T}/tracing_on", "w") as f:
        f.write("0")  # hits are counted in uprobe_profile; nothing need reach the ring buffer
    fns = functions(binary)
    ok = 0
    # One write per probe (a rejected one, e.g. on an instruction uprobes cannot step, fails alone);
    # os.open, as Python's append mode seeks, which tracefs refuses.
    fd = os.open(f"{T}/uprobe_events", os.O_WRONLY | os.O_APPEND)
    for a, off, _ in fns:
        try:
            os.write(fd, f"p:{GROUP}/f{a:x} {binary}:0x{off:x}\n".encode())
            ok += 1
        except OSError:
            pass
    os.close(fd)
    with open(f"{T}/events/{GROUP}/enable", "w") as f:
        f.write("1")
    print(f"{ok} of {len(fns)} functions probed", file=sys.stderr)


def read(binary, out):
    names = {a: n for a, _, n in functions(binary)}
    seen = set(open(out).read().split()) if os.path.exists(out) else set()
    hit = []
    for line in open(f"{T}/uprobe_profile"):
        f = line.split()
        if len(f) >= 3 and f[1].startswith("f") and f[2].isdigit() and int(f[2]) > 0:
            a = int(f[1][1:], 16)
            if names.get(a) and names[a] not in seen:
                hit.append(a)
    with open(out, "a") as f:
        for a in sorted(hit):
            f.write(names[a] + "\n")
            seen.add(names[a])
    print(f"{len(hit)} functions added to {out}", file=sys.stderr)


def remove():
    try:
        with open(f"{T}/events/{GROUP}/enable", "w") as f:
            f.write("0")
    except OSError:
        return
    events = [l for l in open(f"{T}/uprobe_events") if l.strip()]
    if all(l.startswith(f"p:{GROUP}/") for l in events):
        # Only ours: truncating removes them all at once (one by one takes minutes for 15,000).
        fd = os.open(f"{T}/uprobe_events", os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        return
    fd = os.open(f"{T}/uprobe_events", os.O_WRONLY | os.O_APPEND)
    for l in events:
        if l.startswith(f"p:{GROUP}/"):
            os.write(fd, f"-:{l.split()[0].split(':', 1)[1]}\n".encode())
    os.close(fd)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "add":
        add(os.path.realpath(sys.argv[2]))
    elif cmd == "read":
        read(os.path.realpath(sys.argv[2]), sys.argv[3])
    else:
        remove()
