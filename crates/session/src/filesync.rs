//! The client's files over `FileSync/DiffCopy`: the docker CLI walks a directory it shares with the
//! session (`context`, `dockerfile`) and sends a stat packet per entry, in walk order; the daemon asks for
//! the data of the regular files it wants by their index in that walk, and the CLI sends each in packets,
//! an empty one last. A `FIN` each way ends the transfer.
//!
//! Berth turns the walk into a tar stream, which the build reads as it reads a context a client uploads:
//! one way into the build, with its checks on names and links, whatever the transport.

use std::collections::HashSet;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{mpsc, Arc, Mutex};

use bytes::Bytes;

use crate::grpc::Call;
use crate::wire::{fields, Encoder};
use crate::{Error, Session};

const DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";

const PACKET_STAT: u64 = 0;
const PACKET_REQ: u64 = 1;
const PACKET_DATA: u64 = 2;
const PACKET_FIN: u64 = 3;
const PACKET_ERR: u64 = 4;

// Go's os.FileMode bits, which the stat carries.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;
const MODE_IRREGULAR: u32 = 1 << 19;
const MODE_TYPE: u32 = MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR;

/// Files asked for ahead of the one being written, and the bytes they may add up to: the CLI sends up to
/// four files at once, so asking ahead keeps it busy, and what arrives ahead waits in memory.
const AHEAD_FILES: usize = 16;
const AHEAD_BYTES: u64 = 32 << 20;

/// One entry of the client's walk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    /// The path, relative, `/`-separated.
    pub path: String,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    /// Owner (the docker CLI sends 0 for the context).
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of a regular file's data.
    pub size: i64,
    /// Modification time, nanoseconds since the epoch.
    pub mod_time: i64,
    /// A symlink's target, or the earlier path of a hard link.
    pub linkname: String,
    /// Device numbers.
    pub devmajor: i64,
    /// Device numbers.
    pub devminor: i64,
}

impl Stat {
    fn decode(msg: Bytes) -> Result<Stat, Error> {
        let mut st = Stat::default();
        for (f, v) in fields(msg)? {
            match f {
                1 => st.path = v.string(),
                2 => st.mode = v.int() as u32,
                3 => st.uid = v.int() as u32,
                4 => st.gid = v.int() as u32,
                5 => st.size = v.int() as i64,
                6 => st.mod_time = v.int() as i64,
                7 => st.linkname = v.string(),
                8 => st.devmajor = v.int() as i64,
                9 => st.devminor = v.int() as i64,
                _ => {}
            }
        }
        Ok(st)
    }

    /// Whether the walk gives this entry an index the receiver may ask data for (the CLI's rule: regular
    /// files, hard links included).
    fn can_request(&self) -> bool {
        self.mode & MODE_TYPE == 0
    }

    /// Whether the receiver needs its data: a regular file that is not a hard link to an earlier one.
    fn wants_data(&self) -> bool {
        self.can_request() && self.linkname.is_empty() && self.size > 0
    }

    /// The tar entry type and permission bits.
    fn tar_kind(&self) -> (archive::EntryType, u32) {
        let mut perm = self.mode & 0o777;
        if self.mode & MODE_SETUID != 0 {
            perm |= 0o4000;
        }
        if self.mode & MODE_SETGID != 0 {
            perm |= 0o2000;
        }
        if self.mode & MODE_STICKY != 0 {
            perm |= 0o1000;
        }
        let kind = if self.mode & MODE_DIR != 0 {
            archive::EntryType::Directory
        } else if self.mode & MODE_SYMLINK != 0 {
            archive::EntryType::Symlink
        } else if self.mode & MODE_NAMED_PIPE != 0 {
            archive::EntryType::Fifo
        } else if self.mode & MODE_DEVICE != 0 {
            if self.mode & MODE_CHAR_DEVICE != 0 {
                archive::EntryType::Char
            } else {
                archive::EntryType::Block
            }
        } else if !self.linkname.is_empty() {
            archive::EntryType::Link
        } else {
            archive::EntryType::Regular
        };
        (kind, perm)
    }
}

/// Whether `st` is the same as the earlier walk's entry at its path.
fn unchanged(since: Option<&Walk>, st: &Stat) -> bool {
    since.is_some_and(|w| w.entries.get(&st.path) == Some(st))
}

enum Packet {
    Stat(Option<Stat>),
    Data(u32, Bytes),
    Fin,
    Err(String),
    Other,
}

fn decode_packet(msg: Bytes) -> Result<Packet, Error> {
    let (mut kind, mut stat, mut id, mut data) = (0, None, 0u32, Bytes::new());
    for (f, v) in fields(msg)? {
        match f {
            1 => kind = v.int(),
            2 => stat = Some(Stat::decode(v.bytes())?),
            3 => id = v.int() as u32,
            4 => data = v.bytes(),
            _ => {}
        }
    }
    Ok(match kind {
        PACKET_STAT => Packet::Stat(stat),
        PACKET_DATA => Packet::Data(id, data),
        PACKET_FIN => Packet::Fin,
        PACKET_ERR => Packet::Err(String::from_utf8_lossy(&data).into_owned()),
        _ => Packet::Other,
    })
}

/// What to fetch of a shared directory.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// The directory's name in the session (`context`, `dockerfile`).
    pub dir: String,
    /// Only these paths (`.dockerignore` syntax), when not empty.
    pub include: Vec<String>,
    /// Leave these out (`.dockerignore` syntax).
    pub exclude: Vec<String>,
    /// The walk of this directory's last transfer, whose result the receiver still has: an entry whose
    /// stat is the same as then is not sent again (BuildKit's rule: the client's stat is the file's
    /// identity), and the tar stream holds only what changed ([`Synced`] says what went).
    pub since: Option<Arc<Walk>>,
}

/// A directory's entries as one transfer found them, by path.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    entries: HashMap<String, Stat>,
}

impl Walk {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a transfer against an earlier walk ([`SyncRequest::since`]) sent, once its tar stream has ended.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    /// This transfer's walk, for the next one.
    pub walk: Arc<Walk>,
    /// Paths of the earlier walk that are gone (the topmost of each tree gone), each with the
    /// modification time (seconds) its parent directory now has, `None` at the top.
    pub removed: Vec<(String, Option<i64>)>,
    /// The paths the stream holds, and whether each is a directory: what the receiver's copy has anew.
    pub sent: Vec<(String, bool)>,
    /// Regular files whose data came.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

#[derive(Default)]
struct Pending {
    chunks: VecDeque<Bytes>,
    done: bool,
}

/// The receiving end of one `DiffCopy`, driven from a blocking thread.
struct Receiver {
    call: Call,
    rt: tokio::runtime::Handle,
    /// Entries received and not yet written, with the index the walk gave them.
    queue: VecDeque<(u32, Stat)>,
    next_index: u32,
    walk_done: bool,
    /// Data of files asked for, by index.
    pending: HashMap<u32, Pending>,
    /// Sizes of the files asked for that are not written yet.
    ahead_bytes: u64,
    /// The earlier walk: files unchanged since are not asked for.
    since: Option<Arc<Walk>>,
}

impl Receiver {
    fn start(
        session: &Session,
        req: &SyncRequest,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, Error> {
        let mut meta: Vec<(&str, String)> = vec![("dir-name", req.dir.clone())];
        meta.extend(req.include.iter().map(|p| ("include-patterns", p.clone())));
        meta.extend(req.exclude.iter().map(|p| ("exclude-patterns", p.clone())));
        if !session.supports(DIFF_COPY) {
            return Err(Error::Transport(
                "the client shares no files with this session (no FileSync/DiffCopy)".into(),
            ));
        }
        let call = rt.block_on(Call::start(&session.client, DIFF_COPY, &meta))?;
        Ok(Receiver {
            call,
            rt,
            queue: VecDeque::new(),
            next_index: 0,
            walk_done: false,
            pending: HashMap::new(),
            ahead_bytes: 0,
            since: req.since.clone(),
        })
    }

    /// Takes in one packet.
    fn pump(&mut self) -> Result<(), Error> {
        let Some(msg) = self.rt.block_on(self.call.recv())? else {
            return Err(Error::Transport(
                "the client ended the file transfer before it was complete".into(),
            ));
        };
        match decode_packet(msg)? {
            Packet::Stat(None) => self.walk_done = true,
            Packet::Stat(Some(st)) => {
                if self.walk_done {
                    return Err(Error::Transport(
                        "a file's stat after the end of the walk".into(),
                    ));
                }
                let index = self.next_index;
                self.next_index = self.next_index.wrapping_add(1);
                self.queue.push_back((index, st));
            }
            Packet::Data(id, data) => {
                let Some(p) = self.pending.get_mut(&id) else {
                    return Err(Error::Transport(format!(
                        "data for file {id}, never asked for"
                    )));
                };
                if data.is_empty() {
                    p.done = true;
                } else {
                    p.chunks.push_back(data);
                }
            }
            Packet::Err(e) => return Err(Error::Transport(format!("error from the client: {e}"))),
            Packet::Fin => {
                return Err(Error::Transport(
                    "the client ended the transfer early".into(),
                ))
            }
            Packet::Other => {}
        }
        Ok(())
    }

    /// Whether `st`'s data is to be asked for: a file with data that is not the same as in the earlier
    /// walk.
    fn fetches(&self, st: &Stat) -> bool {
        st.wants_data() && !unchanged(self.since.as_deref(), st)
    }

    fn request(&mut self, index: u32, size: u64) -> Result<(), Error> {
        self.pending.insert(index, Pending::default());
        self.ahead_bytes += size;
        let msg = Encoder::new()
            .uint(1, PACKET_REQ)
            .uint(3, u64::from(index))
            .finish();
        self.call.send(&msg, false)
    }

    /// The next entry in walk order, its data asked for (with some of the following files').
    fn next(&mut self) -> Result<Option<(u32, Stat)>, Error> {
        while self.queue.is_empty() && !self.walk_done {
            self.pump()?;
        }
        let Some((index, st)) = self.queue.pop_front() else {
            return Ok(None);
        };
        if self.fetches(&st) && !self.pending.contains_key(&index) {
            self.request(index, st.size as u64)?;
        }
        let mut asked = self.pending.len();
        for i in 0..self.queue.len() {
            if asked >= AHEAD_FILES || self.ahead_bytes >= AHEAD_BYTES {
                break;
            }
            let (ix, wants, size) = {
                let (ix, s) = &self.queue[i];
                (*ix, self.fetches(s), s.size as u64)
            };
            if wants && !self.pending.contains_key(&ix) {
                self.request(ix, size)?;
                asked += 1;
            }
        }
        Ok(Some((index, st)))
    }

    /// Ends the transfer: our FIN, the client's FIN, then the call's status.
    fn finish(mut self) -> Result<(), Error> {
        let fin = Encoder::new().uint(1, PACKET_FIN).finish();
        self.call.send(&fin, true)?;
        loop {
            match self.rt.block_on(self.call.recv())? {
                None => return Ok(()),
                Some(msg) => match decode_packet(msg)? {
                    Packet::Err(e) => {
                        return Err(Error::Transport(format!("error from the client: {e}")))
                    }
                    _ => continue,
                },
            }
        }
    }
}

/// A regular file's data as it arrives.
struct FileData<'a> {
    rx: &'a mut Receiver,
    index: u32,
    left: u64,
    path: String,
}

impl Read for FileData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let p = self.rx.pending.entry(self.index).or_default();
            if let Some(chunk) = p.chunks.front_mut() {
                let n = chunk.len().min(buf.len());
                if n as u64 > self.left {
                    return Err(std::io::Error::other(format!(
                        "{}: the client sent more data than the file's size (it changed while being sent)",
                        self.path
                    )));
                }
                buf[..n].copy_from_slice(&chunk[..n]);
                bytes::Buf::advance(chunk, n);
                if chunk.is_empty() {
                    p.chunks.pop_front();
                }
                self.left -= n as u64;
                return Ok(n);
            }
            if p.done {
                return Err(std::io::Error::other(format!(
                    "{}: the client sent less data than the file's size (it changed while being sent)",
                    self.path
                )));
            }
            self.rx.pump().map_err(std::io::Error::other)?;
        }
    }
}

/// Walks the directory `req` names and calls `entry` for each entry in walk order, with the data of
/// regular files. Blocking: call it off the runtime, with `rt` its handle.
pub(crate) fn receive(
    session: &Session,
    req: &SyncRequest,
    rt: tokio::runtime::Handle,
    mut entry: impl FnMut(&Stat, Option<&mut dyn Read>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rx = Receiver::start(session, req, rt)?;
    while let Some((index, st)) = rx.next()? {
        if rx.fetches(&st) {
            let size = st.size as u64;
            let mut data = FileData {
                rx: &mut rx,
                index,
                left: size,
                path: st.path.clone(),
            };
            entry(&st, Some(&mut data))?;
            if data.left != 0 {
                // The callback did not read it all: read the rest, so the next file's data is next.
                std::io::copy(&mut data, &mut std::io::sink())
                    .map_err(|e| Error::Transport(e.to_string()))?;
            }
            // The empty packet that ends the file.
            loop {
                let p = rx.pending.entry(index).or_default();
                if !p.chunks.is_empty() {
                    return Err(Error::Transport(format!(
                        "{}: the client sent more data than the file's size (it changed while being sent)",
                        st.path
                    )));
                }
                if p.done {
                    break;
                }
                rx.pump()?;
            }
            rx.pending.remove(&index);
            rx.ahead_bytes = rx.ahead_bytes.saturating_sub(size);
        } else {
            entry(&st, None)?;
        }
    }
    rx.finish()
}

/// The regular files of a shared directory, read whole (a Dockerfile, a `.dockerignore`). Blocking.
pub(crate) fn read_files(
    session: &Session,
    req: &SyncRequest,
    rt: tokio::runtime::Handle,
    limit: u64,
) -> Result<HashMap<String, Vec<u8>>, Error> {
    let mut files = HashMap::new();
    let mut total = 0u64;
    receive(session, req, rt, |st, data| {
        if let Some(data) = data {
            total += st.size as u64;
            if total > limit {
                return Err(Error::Transport(format!(
                    "{}: more than {limit} bytes where a small file was expected",
                    st.path
                )));
            }
            let mut buf = Vec::with_capacity(st.size as usize);
            data.read_to_end(&mut buf)
                .map_err(|e| Error::Transport(e.to_string()))?;
            files.insert(st.path.clone(), buf);
        } else if st.can_request() && st.linkname.is_empty() {
            files.insert(st.path.clone(), Vec::new());
        }
        Ok(())
    })?;
    Ok(files)
}

/// The directory as a tar stream, made on a thread of its own as the build reads it. Against an earlier
/// walk ([`SyncRequest::since`]), the stream holds only what changed: entries new or with another stat,
/// hard links to what is sent, and the directories above each (so that the receiver gives them back
/// their times once their contents have changed); [`TarReader::synced`] tells the rest.
pub(crate) fn tar_stream(
    session: Session,
    req: SyncRequest,
    rt: tokio::runtime::Handle,
) -> TarReader {
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>, String>>(8);
    let errors = tx.clone();
    let synced = Arc::new(Mutex::new(None));
    let result = Arc::clone(&synced);
    std::thread::spawn(move || {
        let out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let mut w = archive::Writer::new(out, archive::WriteOptions::default());
        let since = req.since.clone();
        let mut walk = HashMap::new();
        let mut sent: Vec<(String, bool)> = Vec::new();
        let mut sent_set: HashSet<String> = HashSet::new();
        let (mut files, mut bytes) = (0u64, 0u64);
        let made = receive(&session, &req, rt, |st, data| {
            let path = st.path.trim_start_matches('/').to_owned();
            walk.insert(path.clone(), st.clone());
            if let Some(since) = since.as_deref() {
                let relinked = !st.linkname.is_empty()
                    && st.can_request()
                    && sent_set.contains(st.linkname.trim_start_matches('/'));
                if unchanged(Some(since), st) && !relinked {
                    return Ok(());
                }
                // The directories above, as they are now, unless they went already.
                let mut at = 0;
                while let Some(i) = path[at..].find('/') {
                    let dir = &path[..at + i];
                    at += i + 1;
                    if sent_set.contains(dir) {
                        continue;
                    }
                    if let Some(d) = walk.get(dir).filter(|d| d.mode & MODE_DIR != 0) {
                        append(&mut w, d, None)?;
                        sent_set.insert(dir.to_owned());
                        sent.push((dir.to_owned(), true));
                    }
                }
            }
            if data.is_some() {
                files += 1;
                bytes += st.size as u64;
            }
            append(&mut w, st, data)?;
            if since.is_some() {
                sent_set.insert(path.clone());
                sent.push((path, st.mode & MODE_DIR != 0));
            }
            Ok(())
        })
        .and_then(|()| {
            w.finish()
                .map_err(|e| Error::Transport(format!("writing the context: {e}")))
                .and_then(|mut out| {
                    out.flush_chunk()
                        .map_err(|e| Error::Transport(e.to_string()))
                })
        });
        match made {
            Ok(()) => {
                let removed = since
                    .as_deref()
                    .map(|s| removed(s, &walk))
                    .unwrap_or_default();
                let done = Synced {
                    walk: Arc::new(Walk { entries: walk }),
                    removed,
                    sent,
                    files,
                    bytes,
                };
                *result
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(done);
            }
            Err(e) => {
                tracing::info!(error = %e, "session: the context transfer failed");
                let _ = errors.send(Err(e.to_string()));
            }
        }
    });
    TarReader {
        rx,
        chunk: Vec::new(),
        at: 0,
        synced,
    }
}

/// Writes `st` as a tar entry, with `data` (of `st.size` bytes) for a regular file.
fn append(
    w: &mut archive::Writer<ChannelWriter>,
    st: &Stat,
    data: Option<&mut dyn Read>,
) -> Result<(), Error> {
    let (kind, perm) = st.tar_kind();
    let mut h = archive::EntryHeader::new(kind, perm);
    (h.uid, h.gid) = (u64::from(st.uid), u64::from(st.gid));
    h.mtime = (st.mod_time.max(0) / 1_000_000_000) as u64;
    let mut name = st.path.trim_start_matches('/').to_owned();
    let link = match kind {
        archive::EntryType::Directory => {
            name.push('/');
            None
        }
        archive::EntryType::Symlink | archive::EntryType::Link => Some(st.linkname.as_bytes()),
        archive::EntryType::Char | archive::EntryType::Block => {
            h.device = Some((st.devmajor as u32, st.devminor as u32));
            None
        }
        _ => None,
    };
    match data {
        Some(d) => {
            h.size = st.size as u64;
            w.append(&h, name.as_bytes(), link, d)
        }
        None => w.append(&h, name.as_bytes(), link, std::io::empty()),
    }
    .map_err(|e| Error::Transport(format!("writing the context: {e}")))
}

/// The paths of `before` that `now` lacks, the topmost of each tree only (what is below goes with it),
/// each with the time its parent has in `now`.
fn removed(before: &Walk, now: &HashMap<String, Stat>) -> Vec<(String, Option<i64>)> {
    let mut gone: Vec<&str> = before
        .entries
        .keys()
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !now.contains_key(*p))
        .collect();
    gone.sort_unstable();
    let all: HashSet<&str> = gone.iter().copied().collect();
    let mut out: Vec<(String, Option<i64>)> = Vec::new();
    for p in gone {
        let below_another = p.match_indices('/').any(|(i, _)| all.contains(&p[..i]));
        if below_another {
            continue;
        }
        let parent_mtime = p
            .rsplit_once('/')
            .and_then(|(parent, _)| now.get(parent))
            .map(|d| d.mod_time.max(0) / 1_000_000_000);
        out.push((p.to_owned(), parent_mtime));
    }
    out
}

const CHUNK: usize = 256 << 10;

struct ChannelWriter {
    tx: mpsc::SyncSender<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tar stream of a session's directory (see [`crate::Session::context`]).
pub struct TarReader {
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    chunk: Vec<u8>,
    at: usize,
    synced: Arc<Mutex<Option<Synced>>>,
}

impl TarReader {
    /// What the transfer sent. Waits for its end: a reader of the tar may stop at the archive's end
    /// marker, before the transfer has finished (the client's FIN, the call's status).
    pub fn synced(&mut self) -> Result<Synced, Error> {
        loop {
            match self.rx.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Error::Transport(e)),
                Err(_) => break,
            }
        }
        self.synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| Error::Transport("the transfer ended without its summary".into()))
    }
}

impl Read for TarReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                // The writer is gone after its last chunk: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = (self.chunk.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_file_modes_become_tar_types() {
        let st = |mode: u32, link: &str| Stat {
            mode,
            linkname: link.into(),
            size: 3,
            ..Stat::default()
        };
        assert_eq!(
            st(MODE_DIR | 0o755, "").tar_kind(),
            (archive::EntryType::Directory, 0o755)
        );
        assert_eq!(
            st(MODE_SYMLINK | 0o777, "x").tar_kind(),
            (archive::EntryType::Symlink, 0o777)
        );
        assert_eq!(st(0o644, "a").tar_kind(), (archive::EntryType::Link, 0o644));
        assert_eq!(
            st(0o755 | MODE_SETUID | MODE_STICKY, "").tar_kind(),
            (archive::EntryType::Regular, 0o5755)
        );
        assert_eq!(
            st(MODE_DEVICE | MODE_CHAR_DEVICE | 0o600, "").tar_kind().0,
            archive::EntryType::Char
        );
        assert!(st(0o644, "").wants_data());
        assert!(
            !st(0o644, "a").wants_data(),
            "a hard link has no data of its own"
        );
        assert!(
            st(0o644, "a").can_request(),
            "but the walk counts it as a file"
        );
        assert!(!st(MODE_DIR | 0o755, "").can_request());
    }

    #[test]
    fn what_is_gone_is_named_by_the_top_of_each_tree() {
        let st = |path: &str, dir: bool, secs: i64| {
            let s = Stat {
                path: path.into(),
                mode: if dir { MODE_DIR | 0o755 } else { 0o644 },
                mod_time: secs * 1_000_000_000 + 5,
                ..Stat::default()
            };
            (path.to_owned(), s)
        };
        let before = Walk {
            entries: [
                st("a", true, 1),
                st("a/b", true, 1),
                st("a/b/c", false, 1),
                st("a-x", false, 1),
                st("d", true, 1),
                st("d/e", false, 1),
                st("f", false, 1),
            ]
            .into_iter()
            .collect(),
        };
        let now: HashMap<String, Stat> =
            [st("d", true, 7), st("f", false, 1)].into_iter().collect();
        assert_eq!(
            removed(&before, &now),
            vec![
                ("a".to_owned(), None),
                ("a-x".to_owned(), None),
                ("d/e".to_owned(), Some(7)),
            ]
        );
        assert!(unchanged(Some(&before), &st("f", false, 1).1));
        assert!(!unchanged(Some(&before), &st("f", false, 2).1));
        assert!(!unchanged(None, &st("f", false, 1).1));
    }

    #[test]
    fn packets_decode() {
        let stat = Encoder::new()
            .string(1, "dir/f")
            .uint(2, 0o644)
            .uint(5, 12)
            .uint(6, 1_700_000_000_123_456_789)
            .finish();
        let msg = Encoder::new().uint(1, PACKET_STAT).bytes(2, &stat).finish();
        let Packet::Stat(Some(st)) = decode_packet(Bytes::from(msg)).unwrap() else {
            panic!("not a stat");
        };
        assert_eq!((st.path.as_str(), st.mode, st.size), ("dir/f", 0o644, 12));
        assert_eq!(st.mod_time, 1_700_000_000_123_456_789);
        // The walk's end: a stat packet with no stat.
        let end = Encoder::new().uint(1, PACKET_STAT).finish();
        assert!(matches!(
            decode_packet(Bytes::from(end)).unwrap(),
            Packet::Stat(None)
        ));
        let data = Encoder::new()
            .uint(1, PACKET_DATA)
            .uint(3, 7)
            .bytes(4, b"abc")
            .finish();
        assert!(
            matches!(decode_packet(Bytes::from(data)).unwrap(), Packet::Data(7, d) if &d[..] == b"abc")
        );
    }
}
