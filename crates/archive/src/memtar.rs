//! Small tars built in memory from a list of entries, names written byte for byte (so hostile ones such
//! as `../x` or `/etc/x` survive): for tests, fuzz seeds and fixtures.

use std::io;

use tar::EntryType;

use crate::error::Result;
use crate::write::{EntryHeader, WriteOptions, Writer};

/// One entry of an in-memory tar.
#[derive(Clone, Copy, Debug)]
pub enum Entry<'a> {
    /// A directory (mode 0755).
    Dir(&'a str),
    /// A regular file with its contents (mode 0644).
    File(&'a str, &'a [u8]),
    /// A symlink and its target.
    Symlink(&'a str, &'a str),
    /// A hard link and the archive member it names.
    Hardlink(&'a str, &'a str),
    /// A character device `major:minor`.
    Char(&'a str, u32, u32),
    /// A fifo.
    Fifo(&'a str),
}

/// The tar of `entries`, each root-owned with mtime 1700000000.
pub fn tar_of(entries: &[Entry<'_>]) -> Result<Vec<u8>> {
    let mut w = Writer::new(Vec::new(), WriteOptions::default());
    for e in entries {
        let (name, kind, data, link): (&str, EntryType, &[u8], Option<&str>) = match *e {
            Entry::Dir(n) => (n, EntryType::Directory, b"", None),
            Entry::File(n, d) => (n, EntryType::Regular, d, None),
            Entry::Symlink(n, t) => (n, EntryType::Symlink, b"", Some(t)),
            Entry::Hardlink(n, t) => (n, EntryType::Link, b"", Some(t)),
            Entry::Char(n, _, _) => (n, EntryType::Char, b"", None),
            Entry::Fifo(n) => (n, EntryType::Fifo, b"", None),
        };
        let mode = if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        let mut h = EntryHeader::new(kind, mode);
        h.mtime = 1_700_000_000;
        h.size = data.len() as u64;
        if let Entry::Char(_, major, minor) = *e {
            h.device = Some((major, minor));
        }
        w.append(
            &h,
            name.as_bytes(),
            link.map(str::as_bytes),
            io::Cursor::new(data),
        )?;
    }
    w.finish()
}
