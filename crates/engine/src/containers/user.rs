//! `--user` resolved the way Docker does, from the image's own `/etc/passwd` and `/etc/group` (read inside the
//! container's rootfs without following symlinks out of it).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The process identity a container runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` membership and `--group-add`).
    pub additional_gids: Vec<u32>,
    /// Home directory (for `HOME`).
    pub home: String,
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`) and `group_add` in `rootfs`.
pub fn resolve(rootfs: &Path, user: &str, group_add: &[String]) -> Result<ResolvedUser> {
    let passwd = read_in_root(rootfs, "etc/passwd");
    let group = read_in_root(rootfs, "etc/group");
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();

    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = users
        .iter()
        .find(|f| f[0] == user_part || (user_part.parse::<u32>().is_ok() && f[2] == user_part));
    let (uid, mut gid, name, home) = match (entry, user_part.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            Some(f[0].to_owned()),
            f[5].to_owned(),
        ),
        (None, Ok(uid)) => (uid, 0, None, "/".to_owned()),
        (None, Err(_)) => {
            return Err(Error::InvalidParameter(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = group_part {
        gid = match groups.iter().find(|f| f[0] == g) {
            Some(f) => f[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| {
                Error::InvalidParameter(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
    }
    let mut additional = Vec::new();
    if let (Some(name), None) = (&name, group_part) {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional.contains(&g) {
                        additional.push(g);
                    }
                }
            }
        }
    }
    for g in group_add {
        let id = match groups.iter().find(|f| f[0] == g.as_str()) {
            Some(f) => f[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| {
                Error::InvalidParameter(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
        if !additional.contains(&id) {
            additional.push(id);
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Reads a small file inside `root`; a missing file (or one that escapes via symlinks) reads as empty.
fn read_in_root(root: &Path, rel: &str) -> String {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let Ok(dir) = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return String::new();
    };
    let Ok(fd) = openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    ) else {
        return String::new();
    };
    let mut s = String::new();
    if let Err(e) = std::fs::File::from(fd).take(1 << 20).read_to_string(&mut s) {
        // As a missing file: the user is looked up in what was read, and a name not found is an error there.
        tracing::debug!(error = %e, "reading a user database of the image");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\nstaff:x:50:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_and_numbers_resolve_like_docker() {
        let r = rootfs();
        let root = resolve(r.path(), "", &[]).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let app = resolve(r.path(), "app", &[]).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        let num = resolve(r.path(), "4242:staff", &["wheel".into()]).unwrap();
        assert_eq!(
            (num.uid, num.gid, num.additional_gids),
            (4242, 50, vec![10])
        );
        let err = resolve(r.path(), "nobody", &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to find user nobody: no matching entries in passwd file"
        );
    }

    #[test]
    fn passwd_symlinked_out_of_the_root_is_not_followed() {
        let r = rootfs();
        std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil:x:7:7::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("passwd"), r.path().join("etc/passwd"))
            .unwrap();
        assert!(resolve(r.path(), "evil", &[]).is_err());
    }
}
