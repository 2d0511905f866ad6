//! Output cut into log messages as dockerd's copier cuts it: at newlines (which the message leaves out),
//! and at 16 KiB, the parts of a longer line marked as partial messages of one id.

use super::Partial;
use crate::logfile::Stream;

/// dockerd's copier reads 16 KiB at a time; a longer line becomes several partial messages.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Where a message goes: its stream, its text without the newline, and its part if it is one.
pub(crate) type Emit<'a> = dyn FnMut(Stream, &[u8], Option<Partial>) -> std::io::Result<()> + 'a;

/// Per-stream unfinished lines.
#[derive(Default)]
pub(crate) struct Splitter {
    pending: [Vec<u8>; 2],
    /// Parts of the current long line already emitted, per stream.
    parts: [u32; 2],
    ids: [String; 2],
    next_id: u64,
}

impl Splitter {
    /// Cuts `data` into messages, passed to `emit` without their newline; a trailing unfinished line is
    /// kept for the next chunk.
    pub(crate) fn split(
        &mut self,
        stream: Stream,
        mut data: &[u8],
        emit: &mut Emit<'_>,
    ) -> std::io::Result<()> {
        let s = stream as usize;
        while !data.is_empty() {
            let room = MAX_LINE - self.pending[s].len();
            match data.iter().position(|&b| b == b'\n') {
                Some(i) if i < room => {
                    let partial = (self.parts[s] > 0).then(|| self.part(s, true));
                    self.parts[s] = 0;
                    if self.pending[s].is_empty() {
                        emit(stream, &data[..i], partial)?;
                    } else {
                        let mut line = std::mem::take(&mut self.pending[s]);
                        line.extend_from_slice(&data[..i]);
                        emit(stream, &line, partial)?;
                    }
                    data = &data[i + 1..];
                }
                _ if data.len() >= room => {
                    let partial = Some(self.part(s, false));
                    if self.pending[s].is_empty() {
                        emit(stream, &data[..room], partial)?;
                    } else {
                        let mut line = std::mem::take(&mut self.pending[s]);
                        line.extend_from_slice(&data[..room]);
                        emit(stream, &line, partial)?;
                    }
                    data = &data[room..];
                }
                _ => {
                    self.pending[s].extend_from_slice(data);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Emits the unfinished lines (the output has ended): partial messages that are not the line's last
    /// part, since no newline ended them (readers print them without one).
    pub(crate) fn flush(&mut self, emit: &mut Emit<'_>) -> std::io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let s = stream as usize;
            if self.pending[s].is_empty() {
                continue;
            }
            let partial = Some(self.part(s, false));
            let line = std::mem::take(&mut self.pending[s]);
            self.parts[s] = 0;
            emit(stream, &line, partial)?;
        }
        Ok(())
    }

    /// The next part of stream `s`'s current line (a new id for a line's first part).
    fn part(&mut self, s: usize, last: bool) -> Partial {
        if self.parts[s] == 0 {
            self.next_id += 1;
            self.ids[s] = format!(
                "{:016x}{:08x}{:08x}",
                super::now_nanos(),
                std::process::id(),
                self.next_id
            );
        }
        self.parts[s] += 1;
        Partial {
            id: self.ids[s].clone(),
            ordinal: self.parts[s],
            last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the tests see it: stream, text, (part, last).
    type Message = (Stream, Vec<u8>, Option<(u32, bool)>);

    fn collect(chunks: &[(Stream, &[u8])]) -> Vec<Message> {
        let mut s = Splitter::default();
        let mut got = Vec::new();
        let mut emit = |st: Stream, l: &[u8], p: Option<Partial>| {
            got.push((st, l.to_vec(), p.map(|p| (p.ordinal, p.last))));
            Ok(())
        };
        for (st, c) in chunks {
            s.split(*st, c, &mut emit).unwrap();
        }
        s.flush(&mut emit).unwrap();
        got
    }

    #[test]
    fn lines_lose_their_newline_and_unfinished_lines_wait_per_stream() {
        let got = collect(&[
            (Stream::Stdout, b"a\nb"),
            (Stream::Stderr, b"e\n"),
            (Stream::Stdout, b"c\n\nend"),
        ]);
        let lines: Vec<_> = got.iter().map(|g| (g.0, g.1.as_slice(), g.2)).collect();
        assert_eq!(
            lines,
            [
                (Stream::Stdout, &b"a"[..], None),
                (Stream::Stderr, b"e", None),
                (Stream::Stdout, b"bc", None),
                (Stream::Stdout, b"", None),
                (Stream::Stdout, b"end", Some((1, false))),
            ]
        );
    }

    #[test]
    fn long_lines_become_numbered_partial_messages() {
        let mut data = vec![b'x'; 40 * 1024];
        data.push(b'\n');
        let got = collect(&[
            (Stream::Stdout, &data[..1000]),
            (Stream::Stdout, &data[1000..]),
        ]);
        let parts: Vec<_> = got.iter().map(|g| (g.1.len(), g.2)).collect();
        assert_eq!(
            parts,
            [
                (MAX_LINE, Some((1, false))),
                (MAX_LINE, Some((2, false))),
                (40 * 1024 - 2 * MAX_LINE, Some((3, true))),
            ]
        );
    }
}
