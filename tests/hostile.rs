//! Hostile archives sent to `POST /images/load`: every one is refused with a clear error, no image appears,
//! and nothing is written outside the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use common::archive::{layer, legacy_archive, Entry};
use common::Daemon;

/// A directory outside the daemon's root that hostile entries aim at; it must stay empty.
struct Target(tempfile::TempDir);

impl Target {
    fn new() -> Target {
        Target(
            tempfile::Builder::new()
                .prefix("berth-hostile-")
                .tempdir()
                .unwrap(),
        )
    }
    fn path(&self) -> String {
        self.0.path().display().to_string()
    }
    fn assert_untouched(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.0.path()).unwrap().collect();
        assert!(
            entries.is_empty(),
            "something was written outside the root: {entries:?}"
        );
    }
}

fn assert_refused(d: &Daemon, archive: Vec<u8>, what: &str) -> String {
    let r = d.request("POST", "/images/load", &archive);
    assert_eq!(r.status, 200, "errors come inside the stream");
    let text = r.text();
    let err = r
        .json_lines()
        .into_iter()
        .find_map(|l| l["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{what}: load was not refused: {text}"));
    assert_eq!(
        d.get_json("/images/json").as_array().unwrap().len(),
        0,
        "{what}: no image"
    );
    err
}

fn up(path: &str) -> String {
    format!("{}{}", "../".repeat(10), path.trim_start_matches('/'))
}

#[test]
fn load_rejects_layer_with_parent_dir_entry() {
    let d = Daemon::start();
    let t = Target::new();
    let name = up(&format!("{}/escaped", t.path()));
    let err = assert_refused(
        &d,
        legacy_archive("evil:1", &[layer(&[Entry::File(&name, b"x")])]),
        "dotdot",
    );
    assert!(err.contains(".."), "{err}");
    t.assert_untouched();
}

#[test]
fn load_rejects_absolute_entry_paths() {
    let d = Daemon::start();
    let t = Target::new();
    let name = format!("{}/escaped", t.path());
    assert_refused(
        &d,
        legacy_archive("evil:1", &[layer(&[Entry::File(&name, b"x")])]),
        "absolute",
    );
    t.assert_untouched();
}

#[test]
fn load_does_not_write_through_a_symlink_out_of_the_root() {
    let d = Daemon::start();
    let t = Target::new();
    let tp = t.path();
    let l = layer(&[Entry::Symlink("evil", &tp), Entry::File("evil/pwned", b"x")]);
    assert_refused(&d, legacy_archive("evil:1", &[l]), "write through symlink");
    t.assert_untouched();
}

#[test]
fn load_rejects_relative_symlinks_that_climb_out() {
    let d = Daemon::start();
    let l = layer(&[Entry::Symlink("up", "../../../../../../../../etc")]);
    assert_refused(&d, legacy_archive("evil:1", &[l]), "climbing symlink");
}

#[test]
fn load_rejects_hard_links_out_of_the_root() {
    let d = Daemon::start();
    let t = Target::new();
    let victim = t.0.path().join("victim");
    std::fs::write(&victim, b"secret").unwrap();
    let l = layer(&[Entry::Hardlink(
        "stolen",
        &up(&victim.display().to_string()),
    )]);
    assert_refused(&d, legacy_archive("evil:1", &[l]), "hardlink out");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&victim).unwrap().nlink(),
        1,
        "no link was made to the victim"
    );
}

#[test]
fn load_rejects_device_nodes() {
    let d = Daemon::start();
    let l = layer(&[Entry::Dir("dev/"), Entry::CharDevice("dev/mem", 1, 1)]);
    assert_refused(&d, legacy_archive("evil:1", &[l]), "device");
}

#[test]
fn load_rejects_whiteouts_of_a_directory_or_its_parent() {
    let d = Daemon::start();
    // `.wh...` would whiteout `..`: removing "what was there" would empty the directory above the entry.
    for name in [".wh...", "d/.wh..", "d/.wh..."] {
        let l = layer(&[
            Entry::Dir("d/"),
            Entry::File("d/keep", b"x"),
            Entry::File(name, b""),
        ]);
        let err = assert_refused(&d, legacy_archive("evil:1", &[l]), name);
        assert!(err.contains("whiteout of '.' or '..'"), "{name}: {err}");
    }
}

#[test]
fn load_rejects_a_layer_whose_digest_does_not_match() {
    let d = Daemon::start();
    let good = layer(&[Entry::File("a", b"a")]);
    let mut archive = legacy_archive("evil:1", &[good]);
    // Flip the layer's one byte of file data: it sits after the outer and the inner tar header.
    let data_at = 512 + 512;
    assert_eq!(archive[data_at], b'a');
    archive[data_at] = b'b';
    assert_refused(&d, archive, "digest mismatch");
}

#[test]
fn a_good_archive_made_by_the_same_builder_loads() {
    // Guards the tests above: the builder itself makes loadable archives.
    let d = Daemon::start();
    let l = layer(&[
        Entry::Dir("etc/"),
        Entry::File("etc/hello", b"hi"),
        Entry::Symlink("etc/abs", "/etc/hello"),
    ]);
    let r = d.request(
        "POST",
        "/images/load?quiet=1",
        &legacy_archive("good:1", &[l]),
    );
    assert!(r.text().contains("Loaded image: good:1"), "{}", r.text());
}
