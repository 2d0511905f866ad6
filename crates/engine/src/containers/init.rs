//! `--init` (`HostConfig.Init`): the container's process runs under `docker-init` (the `init` crate's
//! static binary, embedded in berth) at `/sbin/docker-init`, as PID 1, as Docker runs tini there.
//!
//! The container must never reach the berth binary (the CVE-2019-5736 class: a container that can open
//! its PID 1's `/proc/self/exe` for writing could replace what the host runs next). So what is bound in
//! is neither the berth binary nor a hard link to it, but a separate copy of the small init, written once
//! to `EXEC_ROOT/init/` with mode 0555 and bound **read-only**: writing through `/proc/1/exe` fails with
//! EROFS (and ETXTBSY while it runs), and the host never executes that file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{Mount, Spec};

use crate::error::{Error, Result};

/// Where the init appears in the container (Docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// FNV-1a of the embedded binary: the file's name, so a new berth never reuses an old init.
fn digest() -> u64 {
    static DIGEST: OnceLock<u64> = OnceLock::new();
    *DIGEST.get_or_init(|| {
        init::BINARY.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// Writes the init to `EXEC_ROOT/init/docker-init-<digest>` (once; temp + fsync + rename) and returns it.
pub(crate) fn install(exec_root: &Path) -> Result<PathBuf> {
    let dir = exec_root.join("init");
    let path = dir.join(format!("docker-init-{:016x}", digest()));
    if let Ok(m) = std::fs::symlink_metadata(&path) {
        if m.is_file() && m.len() == init::BINARY.len() as u64 {
            return Ok(path);
        }
    }
    let fail = |e: std::io::Error| Error::system("installing docker-init", e);
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o555)
            .open(&tmp)?;
        f.write_all(init::BINARY)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o555))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        if let Err(e) = std::fs::remove_file(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "removing a half-written docker-init");
        }
        return Err(fail(e));
    }
    Ok(path)
}

/// Binds the init read-only at [`INIT_PATH`] and puts it before the container's command.
pub(crate) fn apply(spec: &mut Spec, init: &Path) -> Result<()> {
    let bad = |e: String| Error::System(format!("adding docker-init to the spec: {e}"));
    let mount: Mount = serde_json::from_value(serde_json::json!({
        "destination": INIT_PATH,
        "type": "bind",
        "source": init,
        "options": ["bind", "ro", "nosuid", "nodev"],
    }))
    .map_err(|e| bad(e.to_string()))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| bad("no process".into()))?;
    let mut args = vec![INIT_PATH.to_owned(), "--".to_owned()];
    args.extend(process.args().clone().unwrap_or_default());
    process.set_args(Some(args));
    spec.set_process(Some(process));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_writes_a_read_only_copy_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = install(dir.path()).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o555);
        assert_eq!(m.len(), init::BINARY.len() as u64);
        assert_eq!(install(dir.path()).unwrap(), p);
    }

    #[test]
    fn apply_prepends_the_init_and_binds_it_read_only() {
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap();
        process.set_args(Some(vec!["sleep".into(), "5".into()]));
        spec.set_process(Some(process));
        apply(&mut spec, Path::new("/run/x/docker-init")).unwrap();
        let args = spec.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(args, [INIT_PATH, "--", "sleep", "5"]);
        let m = spec.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.destination(), Path::new(INIT_PATH));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_owned()));
    }
}
