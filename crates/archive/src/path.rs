//! Entry names: cleaning, renaming, and the checks on `..` and symlink targets.

use crate::error::{Error, Result};

/// What a `..` component in an entry name means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotDot {
    /// Refused wherever it appears, and so are absolute names (image layers: an honest layer has neither).
    Refuse,
    /// Lexically removes the previous component; climbing above the destination is refused. A leading
    /// `/` is dropped (names are relative to the destination), as Docker's `Untar` reads them.
    WithinDest,
}

/// Docker's `RebaseArchiveEntries`: the first occurrence of `old` in every name (and hard-link target)
/// becomes `new` (Go's `strings.Replace(name, old, new, 1)`); an `old` of `/` prefixes `new`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebase {
    /// The text replaced.
    pub old: String,
    /// Its replacement.
    pub new: String,
}

impl Rebase {
    /// Applies the rule to a name.
    pub fn apply(&self, name: &[u8]) -> Vec<u8> {
        let old = if self.old == "/" {
            ""
        } else {
            self.old.as_str()
        };
        if old.is_empty() {
            let mut out = self.new.as_bytes().to_vec();
            out.extend_from_slice(name);
            return out;
        }
        match find(name, old.as_bytes()) {
            Some(i) => {
                let mut out = name[..i].to_vec();
                out.extend_from_slice(self.new.as_bytes());
                out.extend_from_slice(&name[i + old.len()..]);
                out
            }
            None => name.to_vec(),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// Shows bytes of a name in messages.
pub(crate) fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Splits an entry name into clean components (`.` and empty ones dropped) under `policy`.
/// `dest` names the destination in an [`Error::Outside`].
pub(crate) fn clean(raw: &[u8], policy: DotDot, dest: &str) -> Result<Vec<Vec<u8>>> {
    if policy == DotDot::Refuse && raw.first() == Some(&b'/') {
        return Err(Error::unsafe_path(shown(raw), "absolute path"));
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => match policy {
                DotDot::Refuse => {
                    return Err(Error::unsafe_path(
                        shown(raw),
                        "path contains a '..' component",
                    ))
                }
                DotDot::WithinDest => {
                    if out.pop().is_none() {
                        return Err(Error::Outside {
                            name: shown(raw),
                            dest: dest.to_owned(),
                        });
                    }
                }
            },
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// Joins components with `/`.
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

/// Whether a relative symlink target, from a link `depth` directories below the destination, climbs
/// above it (absolute targets are resolved by whoever reads the tree in its own root: not an escape here).
pub(crate) fn symlink_climbs(depth: usize, target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    let mut level = depth as i64;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                level -= 1;
                if level < 0 {
                    return true;
                }
            }
            _ => level += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_replaces_the_first_occurrence_or_prefixes_for_root() {
        let r = Rebase {
            old: "tree".into(),
            new: "copy".into(),
        };
        assert_eq!(r.apply(b"tree/a/tree"), b"copy/a/tree");
        assert_eq!(r.apply(b"other"), b"other");
        let r = Rebase {
            old: "/".into(),
            new: "root".into(),
        };
        assert_eq!(r.apply(b"/bin"), b"root/bin");
    }

    #[test]
    fn clean_refuses_or_clamps_dot_dot_by_policy() {
        assert!(matches!(
            clean(b"a/../b", DotDot::Refuse, "d"),
            Err(Error::Unsafe { .. })
        ));
        assert!(matches!(
            clean(b"/abs", DotDot::Refuse, "d"),
            Err(Error::Unsafe { .. })
        ));
        assert_eq!(
            clean(b"/a/./b/../c/", DotDot::WithinDest, "d").ok(),
            Some(vec![b"a".to_vec(), b"c".to_vec()])
        );
        assert!(matches!(
            clean(b"a/../../x", DotDot::WithinDest, "d"),
            Err(Error::Outside { .. })
        ));
    }

    #[test]
    fn symlink_climbing_counts_depth() {
        assert!(!symlink_climbs(1, b".."));
        assert!(symlink_climbs(1, b"../.."));
        assert!(symlink_climbs(0, b"a/../../b"));
        assert!(!symlink_climbs(0, b"/etc"));
    }
}
