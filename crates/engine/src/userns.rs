//! `--userns-remap`: the user whose subordinate ids (`/etc/subuid`, `/etc/subgid`) a daemon maps its
//! containers' ids onto, so that root in a container is an unprivileged id on the host. Resolved as dockerd
//! resolves it: `default` is the user and group `dockremap`, made (a system user, with a 65536-id range
//! past every range the files already hold) when missing; `user`, `user:group`, `uid` and `uid:gid` name
//! existing entries of `/etc/passwd` and `/etc/group`; every range of the user, in the files' order, is
//! mapped, container id 0 onwards.

use std::path::Path;
use std::process::Command;

use archive::{IdMap, IdRange};

use crate::error::{Error, Result};

/// What `--userns-remap default` means.
pub const DEFAULT_USER: &str = "dockremap";
/// The length of the ranges dockerd gives the user it makes (and Debian's `useradd` gives new users).
const RANGE_LEN: u64 = 65536;
/// Where dockerd starts looking for a free range.
const RANGE_START: u64 = 100_000;

/// A resolved `--userns-remap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    /// `user:group` by name, as `docker info` and dockerd's logs show the setting once resolved.
    pub name: String,
    /// The user's subordinate ranges.
    pub map: IdMap,
}

impl Remap {
    /// The host ids of the containers' root: the first subordinate uid and gid.
    pub fn root(&self) -> (u32, u32) {
        self.map.root()
    }
}

/// Files the resolution reads, so tests can point it at their own copies.
#[derive(Debug, Clone)]
pub struct Files<'a> {
    /// `/etc/passwd`.
    pub passwd: &'a Path,
    /// `/etc/group`.
    pub group: &'a Path,
    /// `/etc/subuid`.
    pub subuid: &'a Path,
    /// `/etc/subgid`.
    pub subgid: &'a Path,
}

impl Files<'static> {
    /// The host's files.
    pub fn host() -> Self {
        Files {
            passwd: Path::new("/etc/passwd"),
            group: Path::new("/etc/group"),
            subuid: Path::new("/etc/subuid"),
            subgid: Path::new("/etc/subgid"),
        }
    }
}

/// A `name:x:id:...` database line: (name, id).
fn entries(path: &Path) -> Result<Vec<(String, u32)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::System(format!("reading {}: {e}", path.display()))),
    };
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((name.to_owned(), id))
        })
        .collect())
}

fn by_name(list: &[(String, u32)], name: &str) -> Option<u32> {
    list.iter().find(|(n, _)| n == name).map(|&(_, id)| id)
}

fn by_id(list: &[(String, u32)], id: u32) -> Option<String> {
    list.iter().find(|&&(_, i)| i == id).map(|(n, _)| n.clone())
}

/// `--userns-remap SPEC` as dockerd resolves it, making `dockremap` for `default` when it is missing.
/// `Ok(None)` is remapping onto root itself, which dockerd turns off with a warning.
pub fn resolve(spec: &str, files: &Files<'_>) -> Result<Option<Remap>> {
    let invalid = || {
        Error::InvalidParameter(format!(
            "Invalid user/group specification in --userns-remap: {spec:?}"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() > 2 || parts[0].is_empty() {
        return Err(invalid());
    }
    let passwd = entries(files.passwd)?;
    let groups = entries(files.group)?;
    let (user, mut group) = if let Ok(uid) = parts[0].parse::<u32>() {
        let user = by_id(&passwd, uid)
            .ok_or_else(|| invalid_arg(format!("Uid {uid} has no entry in /etc/passwd")))?;
        let group = if parts.len() == 1 {
            Some(
                by_id(&groups, uid)
                    .ok_or_else(|| invalid_arg(format!("Gid {uid} has no entry in /etc/group")))?,
            )
        } else {
            None
        };
        (user, group)
    } else {
        let lookup = if parts[0] == "default" {
            DEFAULT_USER
        } else {
            parts[0]
        };
        if by_name(&passwd, lookup).is_none() {
            if parts[0] != "default" {
                return Err(invalid_arg(format!(
                    "Error during uid lookup for {lookup:?}: user: unknown user {lookup}"
                )));
            }
            add_default_user(files)?;
            return load(DEFAULT_USER, DEFAULT_USER, files).map(Some);
        }
        let group = if parts.len() == 1 {
            if by_name(&groups, lookup).is_none() {
                return Err(invalid_arg(format!(
                    "Error during gid lookup for {lookup:?}: group: unknown group {lookup}"
                )));
            }
            Some(lookup.to_owned())
        } else {
            None
        };
        (lookup.to_owned(), group)
    };
    if parts.len() == 2 {
        let g = parts[1];
        group = Some(if let Ok(gid) = g.parse::<u32>() {
            by_id(&groups, gid)
                .ok_or_else(|| invalid_arg(format!("Gid {gid} has no entry in /etc/passwd")))?
        } else {
            if by_name(&groups, g).is_none() {
                return Err(invalid_arg(format!(
                    "Error during groupname lookup for {g:?}: group: unknown group {g}"
                )));
            }
            g.to_owned()
        });
    }
    if user == "root" {
        tracing::warn!(
            "User namespaces: root cannot be remapped with itself; user namespaces are OFF"
        );
        return Ok(None);
    }
    let group = group.unwrap_or_default();
    load(&user, &group, files).map(Some)
}

fn invalid_arg(msg: String) -> Error {
    Error::InvalidParameter(msg)
}

/// One line of a subordinate-id file: (owner, start, count).
fn sub_ranges(path: &Path) -> Result<Vec<(String, u64, u64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::System(format!("reading {}: {e}", path.display()))),
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let parsed = match f.as_slice() {
            [name, start, count] => start
                .parse::<u64>()
                .ok()
                .zip(count.parse::<u64>().ok())
                .map(|(s, c)| (name.to_string(), s, c)),
            _ => None,
        };
        match parsed {
            Some(r) => out.push(r),
            None => {
                return Err(Error::System(format!(
                    "parsing {}: invalid line {line:?}",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

/// The user's ranges of one file, in the file's order, as consecutive container ids from 0.
fn ranges_of(path: &Path, user: &str, uid: u32, what: &str) -> Result<Vec<IdRange>> {
    let uid = uid.to_string();
    let mut next: u64 = 0;
    let mut out = Vec::new();
    for (_, start, count) in sub_ranges(path)?
        .into_iter()
        .filter(|(n, _, _)| n == user || *n == uid)
    {
        let fits = |v: u64| u32::try_from(v).ok();
        let (Some(container), Some(host), Some(size)) = (fits(next), fits(start), fits(count))
        else {
            return Err(Error::InvalidParameter(format!(
                "error creating ID mappings: a range of {} does not fit 32-bit ids",
                path.display()
            )));
        };
        out.push(IdRange {
            container,
            host,
            size,
        });
        next += count;
    }
    if out.is_empty() {
        // dockerd's words (it says "subuid" for both files).
        return Err(Error::InvalidParameter(format!(
            "error creating ID mappings: no {what} ranges found for user {user:?}"
        )));
    }
    Ok(out)
}

fn load(user: &str, group: &str, files: &Files<'_>) -> Result<Remap> {
    let passwd = entries(files.passwd)?;
    let uid = by_name(&passwd, user).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "error creating ID mappings: could not get user for username {user}"
        ))
    })?;
    tracing::info!(
        user,
        "User namespaces: ID ranges will be mapped to subuid/subgid ranges of: {user}"
    );
    Ok(Remap {
        name: format!("{user}:{group}"),
        map: IdMap {
            uids: ranges_of(files.subuid, user, uid, "subuid")?,
            gids: ranges_of(files.subgid, user, uid, "subgid")?,
        },
    })
}

/// Makes `dockremap` as dockerd does: a system user and group with no login, then a 65536-id range in
/// each subordinate file unless the tools gave it one. Serialised by a lock, since daemons started
/// together (tests) would race `useradd`.
fn add_default_user(files: &Files<'_>) -> Result<()> {
    let lock_path = Path::new("/run/berth-userns-remap.lock");
    let _lock = match crate::host::lock_exclusive(lock_path, "berth userns-remap") {
        Ok(Ok(f)) => Some(f),
        // Another daemon makes the user now: wait for it with a blocking lock.
        Ok(Err(_)) => {
            let f = std::fs::File::open(lock_path)
                .map_err(|e| Error::System(format!("opening {}: {e}", lock_path.display())))?;
            rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| Error::System(format!("locking {}: {e}", lock_path.display())))?;
            Some(f)
        }
        Err(e) => {
            return Err(Error::System(format!(
                "locking {}: {e}",
                lock_path.display()
            )))
        }
    };
    let fail = |msg: String| {
        Error::System(format!(
            "Error during {DEFAULT_USER:?} user creation: {msg}"
        ))
    };
    if by_name(&entries(files.passwd)?, DEFAULT_USER).is_none() {
        let (cmd, args): (&str, &[&str]) = if which("adduser") {
            (
                "adduser",
                &[
                    "--system",
                    "--shell",
                    "/bin/false",
                    "--no-create-home",
                    "--disabled-login",
                    "--disabled-password",
                    "--group",
                    DEFAULT_USER,
                ],
            )
        } else if which("useradd") {
            ("useradd", &["-r", "-s", "/bin/false", DEFAULT_USER])
        } else {
            return Err(fail(
                "cannot add user; no useradd/adduser binary found".into(),
            ));
        };
        run(cmd, args).map_err(|e| fail(format!("error adding user {DEFAULT_USER:?}: {e}")))?;
    }
    for (file, flag) in [(files.subuid, "-v"), (files.subgid, "-w")] {
        let all = sub_ranges(file)?;
        if all.iter().any(|(n, _, _)| n == DEFAULT_USER) {
            continue;
        }
        let start = next_free_range(&all);
        let range = format!("{start}-{}", start + RANGE_LEN - 1);
        run("usermod", &[flag, &range, DEFAULT_USER]).map_err(|e| {
            fail(format!(
                "couldn't create subordinate ID ranges: unable to add {} range to user: {DEFAULT_USER:?}: {e}",
                file.display()
            ))
        })?;
    }
    Ok(())
}

/// The first start from 100000 at which a 65536-id range overlaps none of `ranges`.
fn next_free_range(ranges: &[(String, u64, u64)]) -> u64 {
    let mut sorted: Vec<(u64, u64)> = ranges.iter().map(|&(_, s, c)| (s, c)).collect();
    sorted.sort();
    let mut start = RANGE_START;
    for (s, c) in sorted {
        if start < s + c && s < start + RANGE_LEN {
            start = s + c;
        }
    }
    start
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(cmd).is_file())
}

fn run(cmd: &str, args: &[&str]) -> std::result::Result<(), String> {
    // The admin tools live in sbin, which a daemon started from a user's shell may not have in PATH.
    let mut path = std::env::var("PATH").unwrap_or_default();
    path.push_str(":/usr/sbin:/sbin");
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", path)
        .output()
        .map_err(|e| format!("running {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} failed: {}; output: {:?}",
            out.status,
            String::from_utf8_lossy(&[out.stdout, out.stderr].concat())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(subuid: &str, subgid: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
            w(
                "passwd",
                "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n",
            );
            w("group", "root:x:0:\nalice:x:1000:\nstaff:x:50:\n");
            w("subuid", subuid);
            w("subgid", subgid);
            Fixture { dir }
        }

        fn resolve(&self, spec: &str) -> Result<Option<Remap>> {
            let p = |n: &str| self.dir.path().join(n);
            let (a, b, c, d) = (p("passwd"), p("group"), p("subuid"), p("subgid"));
            resolve(
                spec,
                &Files {
                    passwd: &a,
                    group: &b,
                    subuid: &c,
                    subgid: &d,
                },
            )
        }
    }

    #[test]
    fn every_range_of_the_user_maps_in_order_by_name_or_uid() {
        let f = Fixture::new(
            "alice:100000:65536\nbob:200000:10\n1000:500000:5\n",
            "alice:300000:1000\n",
        );
        let r = f.resolve("alice").unwrap().unwrap();
        assert_eq!(r.name, "alice:alice");
        let range = |container, host, size| IdRange {
            container,
            host,
            size,
        };
        assert_eq!(
            r.map.uids,
            vec![range(0, 100_000, 65536), range(65536, 500_000, 5)]
        );
        assert_eq!(r.map.gids, vec![range(0, 300_000, 1000)]);
        assert_eq!(r.root(), (100_000, 300_000));
        assert_eq!(
            f.resolve("1000:staff").unwrap().unwrap().name,
            "alice:staff"
        );
        assert_eq!(f.resolve("1000:50").unwrap().unwrap().name, "alice:staff");
    }

    #[test]
    fn bad_specs_and_missing_ranges_are_refused_in_dockerds_words() {
        let f = Fixture::new("alice:100000:65536\n", "");
        let msg = |s: &str| f.resolve(s).unwrap_err().to_string();
        assert_eq!(
            msg("a:b:c"),
            "Invalid user/group specification in --userns-remap: \"a:b:c\""
        );
        assert_eq!(msg("4242"), "Uid 4242 has no entry in /etc/passwd");
        assert!(msg("carol").starts_with("Error during uid lookup for \"carol\""));
        assert!(msg("bob").starts_with("Error during gid lookup for \"bob\""));
        assert_eq!(
            msg("alice"),
            "error creating ID mappings: no subgid ranges found for user \"alice\""
        );
        assert_eq!(
            msg("bob:staff"),
            "error creating ID mappings: no subuid ranges found for user \"bob\""
        );
        assert!(f.resolve("root").unwrap().is_none());
    }

    #[test]
    fn a_new_range_starts_past_every_overlapping_one() {
        let r = |s, c| (String::new(), s, c);
        assert_eq!(next_free_range(&[]), 100_000);
        assert_eq!(next_free_range(&[r(100_000, 65536)]), 165_536);
        assert_eq!(
            next_free_range(&[r(165_536, 10), r(100_000, 65536)]),
            165_546
        );
        assert_eq!(next_free_range(&[r(300_000, 65536)]), 100_000);
    }
}
