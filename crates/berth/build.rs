//! Links the berth binary as a position-dependent executable (`-no-pie`).
//!
//! Why: one `berth shim` runs per container, and a PIE binary's relocated read-only data (vtables, string
//! tables, the GOT: ~400 KB here) becomes private dirty memory in every process that maps it. Linked at a
//! fixed address those pages stay clean and shared between all shims, which is most of the per-container
//! memory (PERF.md: ≤ 0.5 MB PSS per shim). The cost is ASLR of the main binary's own image (libraries,
//! heap, stack and mmaps stay randomised) — the default for Go's dockerd, containerd-shim and runc builds.
//! `BERTH_PIE=1` at build time keeps a dynamically linked PIE.
//!
//! It is also linked statically against glibc (`-static`), as dockerd, containerd's shims and runc are
//! built. Why: the dynamic loader, `libc.so.6` and `libgcc_s.so.1` kept 1.9 MB resident in an idle daemon
//! (each library mapped in 64 KB fault-around windows around the few functions used, plus its own relocated
//! data), a fifth of its memory; linked in, the C library's functions the daemon calls are laid out with the
//! rest of its code (below), and a shim or `berth runtime` process starts without the loader's work. The
//! name lookups glibc does (host names, `-G` group) read `/etc/nsswitch.conf`'s `files` and `dns`, which are
//! part of glibc itself. rustc links its unwinder dynamically unless the whole build is `crt-static`, which
//! proc macros cannot be, so the repository's linker (`ordered-cc.sh`) takes the static unwinder when it sees
//! `-static`.
//!
//! A release build also lays its code out in `text-order.txt`'s order (lld's `--symbol-ordering-file`): the
//! functions the daemon runs, first those of the start and five `docker run --rm`, then those of a burst of
//! 50 containers, written by `bench/memory/order.sh` (a uprobe on every function, the ones hit kept). Why:
//! the kernel maps a binary's text in 64 KB windows around each page that runs (fault-around), and with the
//! daemon's code scattered among the CLI's, the builder's and the registry client's, those windows made 11 of
//! its 16 MB resident while it ran 5 MB of pages; laid out, 2.5 MB is. Packed together, the daemon's code is
//! mapped once. The list names symbols of the build it was taken from; a symbol's hash moves whenever its
//! crate's dependencies change, so the link goes through `ordered-cc.sh` (the repository's linker, set in
//! `.cargo/config.toml`), which maps the list onto the symbols this build really has. What maps to nothing
//! costs memory, never correctness; regenerate the list when `bench/memory.sh` shows the text growing.
fn main() {
    embed_build_info();
    println!("cargo:rerun-if-env-changed=BERTH_PIE");
    println!("cargo:rerun-if-changed=text-order.txt");
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("text-order.txt");
    if std::env::var("PROFILE").as_deref() == Ok("release") && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if std::env::var_os("BERTH_PIE").is_none()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        println!("cargo:rustc-link-arg-bins=-static");
    }
}

fn embed_build_info() {
    for var in ["BERTH_GIT_COMMIT", "BERTH_BUILD_TIME", "SOURCE_DATE_EPOCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    // Build again when HEAD moves: its file, and the branch it names (loose or packed).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = std::path::PathBuf::from(git_dir);
        let common = git(&["rev-parse", "--git-common-dir"])
            .map(|c| dir.join(c))
            .unwrap_or_else(|| git_dir.clone());
        let mut watch = vec![git_dir.join("HEAD"), common.join("packed-refs")];
        if let Some(branch) = std::fs::read_to_string(git_dir.join("HEAD"))
            .ok()
            .and_then(|h| h.trim().strip_prefix("ref: ").map(str::to_owned))
        {
            watch.push(common.join(branch));
        }
        for p in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    let commit = std::env::var("BERTH_GIT_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=7", "HEAD"]))
        .unwrap_or_default();
    let time = std::env::var("BERTH_BUILD_TIME")
        .ok()
        .or_else(|| {
            let epoch = std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .or_else(|| git(&["log", "-1", "--format=%ct", "HEAD"]))?;
            epoch.parse::<i64>().ok().map(rfc3339_utc)
        })
        .unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        // `rustc 1.89.0 (29483883e 2025-08-04)`: the name and version.
        .map(|v| v.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=BERTH_BUILD_TIME={time}");
    println!("cargo:rustc-env=BERTH_RUSTC_VERSION={compiler}");
}

/// Unix seconds as dockerd's `BuildTime` (`2025-05-30T12:07:14.000000000+00:00`).
fn rfc3339_utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9f+00:00").to_string())
        .unwrap_or_default()
}
