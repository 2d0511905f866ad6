//! The architecture holds itself: every workspace crate may depend only on the internal crates this table
//! allows, read from `cargo metadata`. Data flows one way (CLI → HTTP → api → engine → subsystems); a lower
//! crate never imports a higher one, and the CLI speaks to the daemon only over the Engine API. The same graph
//! is drawn in docs/architecture.md; change both together, with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each workspace crate and the internal crates it may depend on (normal and build dependencies; tests may
/// use more). `None`: anything (the binary, which wires everything together).
const ALLOWED: &[(&str, Option<&[&str]>)] = &[
    ("berth", None),
    // The CLI talks HTTP to the daemon; it shares only leaf crates that know nothing of the daemon: tar
    // writing, and the build crate's `.dockerignore` and Dockerfile rules (so both sides read a context alike).
    ("cli", Some(&["archive", "build", "stdio"])),
    // The API maps HTTP to engine calls; it never reaches past the engine into a subsystem.
    ("api", Some(&["engine", "stdio"])),
    (
        "engine",
        Some(&[
            "image", "runtime", "shim", "network", "init", "build", "registry", "session",
            "archive", "stdio",
        ]),
    ),
    ("shim", Some(&["runtime", "stdio"])),
    // Subsystems: never the engine or the API.
    ("image", Some(&["archive"])),
    ("runtime", Some(&["stdio"])),
    ("network", Some(&[])),
    ("init", Some(&[])),
    ("build", Some(&["archive"])),
    ("registry", Some(&[])),
    // The daemon's side of a BuildKit session: it writes what the client sends as a tar stream.
    ("session", Some(&["archive"])),
    ("archive", Some(&[])),
    ("stdio", Some(&[])),
];

#[test]
fn crates_depend_only_on_what_the_design_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(&root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let internal: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let allowed: BTreeMap<&str, Option<&[&str]>> = ALLOWED.iter().copied().collect();

    let mut wrong = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap();
        let Some(rule) = allowed.get(name) else {
            wrong.push(format!(
                "{name} is a new crate: add it, with what it may depend on, to ALLOWED here and to the \
                 graph in docs/architecture.md"
            ));
            continue;
        };
        let Some(rule) = rule else { continue };
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            let dev = d["kind"].as_str() == Some("dev");
            if internal.contains(dep) && !dev && !rule.contains(&dep) {
                wrong.push(format!("{name} depends on {dep}, which the design forbids"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The check itself sees the graph: the binary is there and the engine has its subsystems.
    assert!(internal.contains("berth") && internal.contains("engine"));
    let engine = packages.iter().find(|p| p["name"] == "engine").unwrap();
    assert!(engine["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["name"] == "image"));
}

/// Flag parsing lives at the edge: the binary and the CLI's command tree use clap; the libraries under them
/// take plain config structs (a shim or the runtime gains no parser, and its flags are defined once).
#[test]
fn only_the_binary_and_the_cli_parse_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(&root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut users = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let uses_clap = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "clap" && d["kind"].as_str() != Some("dev"));
        if uses_clap {
            users.push(name.to_owned());
        }
    }
    users.sort();
    assert_eq!(users, ["berth", "cli"], "crates that depend on clap");
}

/// The binary is linked statically (see `crates/berth/build.rs`): it has no program interpreter and no dynamic
/// section, so no `ld.so`, `libc.so`, `libgcc_s.so` or `libm.so` is mapped into the daemon and every shim.
/// Checked from the ELF program headers, so the test needs no tool.
#[test]
fn the_binary_is_linked_statically() {
    let elf = std::fs::read(env!("CARGO_BIN_EXE_berth")).expect("reading the berth binary");
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let types: Vec<u32> = (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
        })
        .collect();
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    assert!(
        !types.contains(&PT_INTERP) && !types.contains(&PT_DYNAMIC),
        "berth is dynamically linked (program header types {types:?}); `file` and `ldd` show what it loads"
    );
}
