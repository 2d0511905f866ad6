//! Links the berth binary as a position-dependent executable (`-no-pie`).
//!
//! Why: one `berth shim` runs per container, and a PIE binary's relocated read-only data (vtables, string
//! tables, the GOT: ~400 KB here) becomes private dirty memory in every process that maps it. Linked at a
//! fixed address those pages stay clean and shared between all shims, which is most of the per-container
//! memory (PERF.md: ≤ 0.5 MB PSS per shim). The cost is ASLR of the main binary's own image (libraries,
//! heap, stack and mmaps stay randomised) — the default for Go's dockerd, containerd-shim and runc builds.
//! `BERTH_PIE=1` at build time keeps a PIE.
//!
//! A release build also lays its code out in `text-order.txt`'s order (lld's `--symbol-ordering-file`): the
//! functions the daemon runs, first those of the start and five `docker run --rm`, then those of a burst of
//! 50 containers, written by `bench/memory/order.sh` (a uprobe on every function, the ones hit kept). Why:
//! the kernel maps a binary's text in 64 KB windows around each page that runs (fault-around), and with the
//! daemon's code scattered among the CLI's, the builder's and the registry client's, those windows made 11 of
//! its 16 MB resident while it ran 5 MB of pages; laid out, 2.5 MB is. Packed together, the daemon's code is
//! mapped once. Names the file lists that a build no longer has (renamed or re-instantiated functions) are
//! ignored, so a stale file costs memory, never correctness; regenerate it when `bench/memory.sh` shows the
//! text growing.
fn main() {
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
    }
}
