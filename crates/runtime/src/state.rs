//! On-disk state of containers created by `berth runtime create`, so that later commands
//! (`start`, `state`, `kill`, `delete`) in other processes can find them, as runc's `--root`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The default state root: `$BERTH_RUNTIME_ROOT`, else `/run/berth/runtime`.
pub fn default_root() -> PathBuf {
    std::env::var_os("BERTH_RUNTIME_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/berth/runtime"))
}

/// A container's status, as `runc state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up; the process has not been started.
    Created,
    /// The process runs.
    Running,
    /// The process has exited.
    Stopped,
}

/// What is saved of a container (`<root>/<id>/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// OCI runtime spec version of the state format.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// The init's pid (0 once deleted).
    pub pid: i32,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The init's start time in clock ticks since boot (`/proc/PID/stat` field 22), to tell
    /// the init from a later process that reuses its pid.
    pub start_time: u64,
    /// The container's cgroup directories (one per v1 hierarchy, or one on v2).
    pub cgroup_dirs: Vec<PathBuf>,
}

/// A process's start time from `/proc/PID/stat`, if it exists.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Checks that an id is usable as a directory name.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::State(format!("invalid container id {id:?}")))
    }
}

impl State {
    /// The directory holding a container's state.
    pub fn dir(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    /// The FIFO `start` writes to.
    pub fn fifo(root: &Path, id: &str) -> PathBuf {
        Self::dir(root, id).join("exec.fifo")
    }

    /// Reads a container's state.
    pub fn load(root: &Path, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = Self::dir(root, id).join("state.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::io("parse", &path, std::io::Error::other(e)))
    }

    /// Writes the state atomically.
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = Self::dir(root, &self.id);
        let tmp = dir.join("state.json.tmp");
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::io("encode", &tmp, std::io::Error::other(e)))?;
        std::fs::write(&tmp, json).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, dir.join("state.json")).map_err(|e| Error::io("rename", &tmp, e))
    }

    /// Whether the init still runs (and is the same process).
    pub fn alive(&self) -> bool {
        self.pid > 0
            && process_start_time(self.pid) == Some(self.start_time)
            && !is_zombie(self.pid)
    }

    /// The container's status now.
    pub fn status(&self, root: &Path) -> Status {
        if !self.alive() {
            Status::Stopped
        } else if Self::fifo(root, &self.id).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The JSON `runc state` prints.
    pub fn to_oci_json(&self, root: &Path) -> serde_json::Value {
        let status = self.status(root);
        serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status,
            "pid": if status == Status::Stopped { 0 } else { self.pid },
            "bundle": self.bundle,
        })
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s.get(i + 2..i + 3))
                .map(|st| st == "Z")
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_root_are_rejected() {
        assert!(validate_id("web-1.a_b").is_ok());
        for bad in ["", "..", "a/b", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn our_own_start_time_is_read_and_we_are_alive() {
        let me = std::process::id() as i32;
        let st = State {
            oci_version: "1.0.2".into(),
            id: "x".into(),
            pid: me,
            bundle: PathBuf::from("/b"),
            start_time: process_start_time(me).unwrap(),
            cgroup_dirs: Vec::new(),
        };
        assert!(st.alive());
        let other = State {
            start_time: st.start_time + 1,
            ..st.clone()
        };
        assert!(!other.alive());
    }
}
