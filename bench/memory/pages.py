"""Where a process's resident memory goes: its smaps summed by kind, and with --touched, the text pages it
really executed (needs the process to run with split-text.so, which gives each text page a VMA of its own so
the kernel's 64 KiB fault-around cannot map pages the code never ran), attributed to crates; and each
anonymous mapping that holds resident pages (heap, malloc arenas, thread stacks), largest first.

    python3 pages.py PID BINARY [--touched]
"""
import collections
import re
import subprocess
import sys

pid, binary = int(sys.argv[1]), sys.argv[2]
touched_mode = "--touched" in sys.argv[3:]

kinds = collections.Counter()
anon = []  # (rss kB, size kB, name) of each anonymous mapping with resident pages
text_pages = []  # (start, end) of each resident text VMA
cur = None
for line in open(f"/proc/{pid}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        f = line.split()
        path = f[5] if len(f) >= 6 else "[anon]"
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if path == binary:
            kind = {"r-xp": "berth text", "r--p": "berth read-only data"}.get(f[1], "berth data")
        elif path.startswith("/") and ".so" in path:
            kind = "shared libraries"
        else:
            kind = "anonymous (heap, stacks)"
        cur = (kind, lo, hi, path)
    elif cur and line.startswith("Rss:"):
        kb = int(line.split()[1])
        kinds[cur[0]] += kb
        if cur[0].startswith("anonymous") and kb:
            anon.append((kb, (cur[2] - cur[1]) // 1024, cur[3]))
        if cur[0] == "berth text" and kb:
            text_pages.append((cur[1], cur[2]))
total = sum(kinds.values())
print(f"RSS {total} kB")
for k, v in kinds.most_common():
    print(f"  {k:28} {v:7} kB")
# A mapping of 64 MiB (or what is left of one) is a malloc arena of a thread's; 8 MiB plus a guard page is
# the main thread's stack limit, 2 MiB a thread's stack (Rust's default).
anon_lines = ", ".join(f"{r} of {s} kB {n if n != '[anon]' else ''}".strip() for r, s, n in sorted(anon, reverse=True)[:8])
print(f"  anonymous mappings, resident of size: {anon_lines}")

if touched_mode:
    syms = []
    out = subprocess.run(["nm", "-n", "-S", "-C", "--defined-only", binary], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        f = line.split(" ", 3)
        if len(f) == 4 and f[2] in "tTwW":
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    def crate(name):
        m = re.match(r"^<?(?:&(?:mut )?)?([A-Za-z_][A-Za-z0-9_]*)::", name)
        return m.group(1) if m else "?"
    by_crate = collections.Counter()
    i = 0
    for lo, hi in text_pages:
        while i < len(syms) and syms[i][0] + syms[i][1] <= lo:
            i += 1
        j = i
        while j < len(syms) and syms[j][0] < hi:
            a, s, n = syms[j]
            by_crate[crate(n)] += max(0, min(a + s, hi) - max(a, lo))
            j += 1
    pages = sum(hi - lo for lo, hi in text_pages) // 1024
    print(f"text pages executed: {pages} kB; bytes of functions on them, by crate:")
    for c, b in by_crate.most_common(25):
        print(f"  {c:28} {b // 1024:7} kB")

