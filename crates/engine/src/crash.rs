//! Named crash points: a test hook that kills the daemon with SIGKILL between two persisted steps of a
//! container operation, so that a test can check what a restart makes of each intermediate state.
//!
//! When the environment variable `BERTH_CRASH_AT` equals a point's name as the daemon reaches it, the daemon
//! dies there and then. Unset (always, outside tests), a point costs one comparison with a value read once.
//! Timing-based kills would be flaky: a name stops the daemon at exactly one step.

use std::sync::OnceLock;

/// The environment variable naming the point at which the daemon kills itself.
pub const ENV: &str = "BERTH_CRASH_AT";

/// Every crash point, in the order an operation reaches them (`tests/crash.rs` iterates over this list; a
/// unit test checks that every point the engine uses is listed here).
pub const POINTS: &[&str] = &[
    // create: the record is written with a "being created" mark, then the volumes, then the mark goes.
    "create:after-record",
    "create:after-volumes",
    "create:after-commit",
    // start: rootfs mounted and bundle written; shim and container made (init waiting); network set up;
    // process executed; record says running.
    "start:after-mount",
    "start:after-shim",
    "start:after-network",
    "start:after-exec",
    "start:after-record",
    // stop and kill: the signal sent, the exit not yet seen.
    "stop:after-signal",
    "kill:after-signal",
    // The exit of a running container (after a stop, a kill or `rm -f`): recorded as exited; network
    // released; rootfs unmounted.
    "exit:after-record",
    "exit:after-network",
    "exit:after-unmount",
    // rm: recorded as being removed; network released; rootfs unmounted; record and directory gone.
    "rm:after-removing",
    "rm:after-network",
    "rm:after-unmount",
    "rm:after-record",
];

/// Kills the process with SIGKILL at once when `BERTH_CRASH_AT` names `name` (see the module's doc).
pub(crate) fn crash_point(name: &'static str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    debug_assert!(POINTS.contains(&name), "crash point {name} is not listed");
    let target = TARGET.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()));
    if target.as_deref() == Some(name) {
        tracing::warn!(point = name, "crash point reached: killing the daemon");
        // SAFETY: kill(2) on our own pid with a valid signal number has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        // SIGKILL cannot be caught; should it somehow not be delivered, still never go on past the point.
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every crash point called in the engine's sources names a listed point, and every listed point is
    /// used exactly once (the crash test iterates over the list and expects each to be reachable).
    #[test]
    fn every_crash_point_used_is_listed_and_every_listed_point_is_used() {
        let mut used = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for part in text.split("crash_point(\"").skip(1) {
                        let name = part.split('"').next().unwrap().to_owned();
                        used.push((name, path.display().to_string()));
                    }
                }
            }
        }
        for (name, file) in &used {
            assert!(
                POINTS.contains(&name.as_str()),
                "{file}: {name} not in POINTS"
            );
        }
        for p in POINTS {
            let n = used.iter().filter(|(u, _)| u == p).count();
            assert_eq!(n, 1, "{p} is used {n} times");
        }
    }
}
