//! Arbitrary bytes as a tar, extracted into a fresh root by every kind of extraction (the first byte picks
//! layer, container or host options and the kernel's or the fallback resolution): whatever happens,
//! nothing may appear outside the root, and a host file may never gain a hard link.
//!
//! The root holds symlinks that point out of it (`host` to the outside directory by absolute path, `up`
//! climbing with `..`) as a hostile container's tree would, so entries written "through" them are tried.

#![no_main]

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, tar)) = data.split_first() else {
        return;
    };
    // tmpfs when there is one: thousands of roots a second are made and removed.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let root = dir.path().join("a/root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).expect("root");
    std::fs::create_dir_all(&outside).expect("outside");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"host file").expect("victim");
    std::os::unix::fs::symlink(&outside, root.join("host")).expect("symlink");
    std::os::unix::fs::symlink("../../..", root.join("up")).expect("symlink");

    let mut opts = match pick % 3 {
        0 => archive::Options::layer(),
        1 => archive::Options::container("/"),
        _ => archive::Options::host("/dest"),
    };
    opts.force_walk = pick & 0x80 != 0;
    let fd = rustix::fs::open(
        &root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .expect("open root");
    let _ = archive::extract(fd.as_fd(), "", tar, &opts);

    let outside_entries = std::fs::read_dir(&outside).expect("read outside").count();
    assert_eq!(outside_entries, 0, "an entry was written outside the root");
    let mut next_to_root: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read tmp")
        .map(|e| e.expect("entry").file_name())
        .collect();
    next_to_root.sort();
    assert_eq!(
        next_to_root,
        ["a", "outside", "victim"],
        "something appeared outside the root"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("a"))
            .expect("read a")
            .count(),
        1,
        "something appeared next to the root"
    );
    let v = std::fs::symlink_metadata(&victim).expect("victim");
    assert_eq!(v.nlink(), 1, "a host file was hard-linked");
    assert_eq!(
        std::fs::read(&victim).expect("victim"),
        b"host file",
        "a host file was written"
    );
});
