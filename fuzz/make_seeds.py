#!/usr/bin/env python3
"""Writes the seed corpus of the `extract` fuzz target: small valid and hostile tars, each prefixed with the
byte that picks the extraction mode (0 layer, 1 container, 2 host; +0x80 for the fallback walk).

Run from the fuzz directory: python3 make_seeds.py corpus/extract
"""
import io
import os
import sys
import tarfile


def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, fmt=tarfile.GNU_FORMAT, pax=None):
    return (name, kind, data, link, mode, pax)


def build(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, link, mode, pax in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data)
            info.linkname = link
            info.mode = mode
            info.mtime = 1700000000
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            if pax:
                info.pax_headers = pax
            t.addfile(info, io.BytesIO(data) if data else None)
    # tarfile pads to a 10 KiB record: keep the entries and the two zero blocks that end the archive.
    raw = buf.getvalue()
    used = len(raw.rstrip(b"\0"))
    used = (used + 511) // 512 * 512
    return raw[:used] + b"\0" * 1024


SEEDS = {
    "valid": [entry("d/", tarfile.DIRTYPE, mode=0o755), entry("d/f", data=b"hello"),
              entry("d/l", tarfile.SYMTYPE, link="f"), entry("d/h", tarfile.LNKTYPE, link="d/f")],
    "dotdot": [entry("../escape", data=b"x"), entry("a/../../escape2", data=b"x")],
    "absolute": [entry("/tmp/abs", data=b"x")],
    "symlink-climb": [entry("up2", tarfile.SYMTYPE, link="../../.."), entry("up2/x", data=b"x")],
    "through-planted": [entry("evil", tarfile.SYMTYPE, link="/"), entry("evil/outside/x", data=b"x"),
                        entry("host/x", data=b"x"), entry("up/outside/y", data=b"y")],
    "hardlink-out": [entry("h", tarfile.LNKTYPE, link="../../victim"), entry("h2", tarfile.LNKTYPE, link="up/victim"),
                     entry("h3", tarfile.LNKTYPE, link="/victim")],
    "device": [entry("dev/null", tarfile.CHRTYPE)],
    "whiteouts": [entry("a/", tarfile.DIRTYPE, mode=0o755), entry("a/.wh.b"), entry("a/.wh..wh..opq"),
                  entry(".wh..wh.plnk/1")],
    "whiteout-dotdot": [entry(".wh..."), entry("d/", tarfile.DIRTYPE, mode=0o755), entry("d/.wh.."), entry("d/.wh...")],
    "replace": [entry("x/", tarfile.DIRTYPE, mode=0o755), entry("x", data=b"file"), entry("x/", tarfile.DIRTYPE, mode=0o700)],
    "fifo": [entry("p", tarfile.FIFOTYPE, mode=0o600)],
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, entries in SEEDS.items():
        data = build(entries)
        for mode in (0, 1, 2, 0x80, 0x81, 0x82):
            with open(os.path.join(out, f"{name}-{mode:02x}"), "wb") as f:
                f.write(bytes([mode]) + data)
    long = "n" * 150
    pax = build([entry(long + "/f", data=b"x", pax={"SCHILY.xattr.user.a": "v"}),
                 entry("l", tarfile.SYMTYPE, link="t" * 200)], fmt=tarfile.PAX_FORMAT)
    for mode in (0, 1, 2):
        with open(os.path.join(out, f"pax-long-{mode:02x}"), "wb") as f:
            f.write(bytes([mode]) + pax)


if __name__ == "__main__":
    main()
