//! Reading a tar stream member by member, without writing anything: for archives whose members are not
//! a file tree to unpack but records to take in (a `docker save` archive's manifests, configs and layer
//! blobs, which the image store files by digest). Anything that makes files from a tar's names goes
//! through [`crate::extract()`] instead.

use std::io::{self, Read};

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file of `size` bytes, readable from [`Member::data`].
    File {
        /// The content's length, from the header.
        size: u64,
    },
    /// A symlink to `target`, as stored.
    Symlink {
        /// The link's target.
        target: Vec<u8>,
    },
    /// A hard link to the member named `target`, as stored.
    HardLink {
        /// The member it names.
        target: Vec<u8>,
    },
    /// Anything else (directories, devices, fifos): no content to take.
    Other,
}

/// One member of the stream.
pub struct Member<'a> {
    /// The path as stored (PAX and GNU long names applied).
    pub path: Vec<u8>,
    /// What it is.
    pub kind: MemberKind,
    /// Its content (empty unless a file); what the caller leaves unread is skipped.
    pub data: &'a mut dyn Read,
}

/// Why [`read_members`] stopped: the tar stream itself, or the caller.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The stream is not a readable tar (or reading it failed).
    Tar(io::Error),
    /// The caller's own error, returned as it was.
    Caller(E),
}

/// Calls `f` for each member of the tar read from `r`, in order; returns how many members there were.
pub fn read_members<R: Read, E>(
    r: R,
    mut f: impl FnMut(Member<'_>) -> Result<(), E>,
) -> Result<u64, ReadError<E>> {
    let mut archive = tar::Archive::new(r);
    let mut count = 0;
    for entry in archive.entries().map_err(ReadError::Tar)? {
        let mut entry = entry.map_err(ReadError::Tar)?;
        count += 1;
        let path = entry.path_bytes().into_owned();
        let link = || entry.link_name_bytes().map(|t| t.into_owned());
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => MemberKind::File {
                size: entry.header().size().map_err(ReadError::Tar)?,
            },
            tar::EntryType::Symlink => {
                link().map_or(MemberKind::Other, |target| MemberKind::Symlink { target })
            }
            tar::EntryType::Link => {
                link().map_or(MemberKind::Other, |target| MemberKind::HardLink { target })
            }
            _ => MemberKind::Other,
        };
        f(Member {
            path,
            kind,
            data: &mut entry,
        })
        .map_err(ReadError::Caller)?;
    }
    Ok(count)
}

/// Reads until `buf` is full or the stream ends (retrying interrupted reads), and returns how many bytes it
/// read: a format sniff needs the whole head even when the reader hands out short pieces, and a comparison
/// goes faster in whole pieces.
pub fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtar::{tar_of, Entry};

    #[test]
    fn members_come_in_order_with_their_kind_and_content() {
        let long = format!("d/{}", "n".repeat(150));
        let tar = tar_of(&[
            Entry::Dir("d"),
            Entry::File("d/f", b"hello"),
            Entry::File(&long, b"x"),
            Entry::Symlink("d/s", "f"),
            Entry::Hardlink("d/h", "d/f"),
        ])
        .unwrap();
        let mut seen = Vec::new();
        let n = read_members(&tar[..], |m| {
            let mut data = Vec::new();
            m.data.read_to_end(&mut data).map_err(|e| e.to_string())?;
            seen.push((String::from_utf8(m.path).unwrap(), m.kind, data));
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(n, 5);
        assert_eq!(seen[0].1, MemberKind::Other);
        assert_eq!(
            seen[1],
            (
                "d/f".into(),
                MemberKind::File { size: 5 },
                b"hello".to_vec()
            )
        );
        assert_eq!(seen[2].0, long);
        assert_eq!(
            seen[3].1,
            MemberKind::Symlink {
                target: b"f".to_vec()
            }
        );
        assert_eq!(
            seen[4].1,
            MemberKind::HardLink {
                target: b"d/f".to_vec()
            }
        );
    }

    #[test]
    fn the_callers_error_stops_the_read_and_comes_back_as_it_was() {
        let tar = tar_of(&[Entry::File("a", b"1"), Entry::File("b", b"2")]).unwrap();
        let mut calls = 0;
        let r = read_members(&tar[..], |_| {
            calls += 1;
            Err("stop")
        });
        assert!(matches!(r, Err(ReadError::Caller("stop"))));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_stream_that_is_not_tar_is_a_tar_error() {
        let r = read_members(&[1u8; 700][..], |_| Ok::<(), ()>(()));
        assert!(matches!(r, Err(ReadError::Tar(_))), "{r:?}");
    }
}
