//! Builds `program/docker_init.rs` as a static executable (glibc's `crt-static`) with the same rustc, so it
//! runs in any image: the berth binary itself is dynamically linked and most images have no matching libc.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "program/docker_init.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("docker-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "docker_init",
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "codegen-units=1",
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["--target", &target])
        .arg("-o")
        .arg(&out)
        .arg(src)
        .status()
        .expect("running rustc for docker-init");
    assert!(status.success(), "building docker-init failed");
}
