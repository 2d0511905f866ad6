//! Links the berth binary as a position-dependent executable (`-no-pie`).
//!
//! Why: one `berth shim` runs per container, and a PIE binary's relocated read-only data (vtables, string
//! tables, the GOT: ~400 KB here) becomes private dirty memory in every process that maps it. Linked at a
//! fixed address those pages stay clean and shared between all shims, which is most of the per-container
//! memory (PERF.md: ≤ 0.5 MB PSS per shim). The cost is ASLR of the main binary's own image (libraries,
//! heap, stack and mmaps stay randomised) — the default for Go's dockerd, containerd-shim and runc builds.
//! `BERTH_PIE=1` at build time keeps a PIE.
fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_PIE");
    if std::env::var_os("BERTH_PIE").is_none()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
