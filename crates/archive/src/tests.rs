//! The hostile-archive cases, once, against every kind of extraction (layer, container, host) and both
//! ways of resolving paths (the kernel's `openat2` and the fallback walk); then the writer.

#![allow(clippy::unwrap_used)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::memtar::{tar_of, Entry as E};
use crate::*;

/// `<tmp>/a/b/root` is the extraction root; `<tmp>/outside` must stay empty, and nothing may appear next
/// to the root.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    Sandbox {
        _dir: dir,
        root,
        outside,
    }
}

impl Sandbox {
    fn assert_nothing_outside(&self) {
        assert_eq!(
            std::fs::read_dir(&self.outside).unwrap().count(),
            0,
            "the outside directory was written"
        );
        let parent = self.root.parent().unwrap();
        assert_eq!(
            std::fs::read_dir(parent).unwrap().count(),
            1,
            "something appeared next to the root"
        );
    }

    fn fd(&self) -> OwnedFd {
        rustix::fs::open(&self.root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }
}

fn tar(entries: &[E<'_>]) -> Vec<u8> {
    tar_of(entries).unwrap()
}

/// Every extraction mode, each with the kernel's resolution and with the fallback walk.
fn modes() -> Vec<(&'static str, Options)> {
    let mut out = Vec::new();
    for walk in [false, true] {
        for (name, mut o) in [
            ("layer", Options::layer()),
            ("container", Options::container("/")),
            ("host", Options::host("/dest")),
        ] {
            o.force_walk = walk;
            out.push((name, o));
        }
    }
    out
}

fn run(s: &Sandbox, o: &Options, entries: &[E<'_>]) -> Result<Stats> {
    extract(s.fd().as_fd(), "", &tar(entries)[..], o)
}

#[test]
fn parent_dir_entries_never_escape() {
    for (mode, o) in modes() {
        let s = sandbox();
        let r = run(&s, &o, &[E::File("../escape", b"x")]);
        assert!(r.as_ref().is_err_and(Error::is_refusal), "{mode}: {r:?}");
        let r = run(&s, &o, &[E::File("ok/../../../outside/x", b"x")]);
        assert!(r.as_ref().is_err_and(Error::is_refusal), "{mode}: {r:?}");
        s.assert_nothing_outside();
    }
}

#[test]
fn absolute_names_are_refused_in_layers_and_land_inside_elsewhere() {
    for (mode, o) in modes() {
        let s = sandbox();
        let abs = format!("{}/x", s.outside.display());
        let r = run(&s, &o, &[E::File(&abs, b"x")]);
        if o.dot_dot == DotDot::Refuse {
            assert!(matches!(r, Err(Error::Unsafe { .. })), "{mode}: {r:?}");
        } else {
            r.unwrap();
            let inside = s.root.join(abs.trim_start_matches('/'));
            assert_eq!(std::fs::read(inside).unwrap(), b"x", "{mode}");
        }
        s.assert_nothing_outside();
    }
}

#[test]
fn symlinks_climbing_out_are_refused_where_they_would_be_followed() {
    for (mode, o) in modes() {
        let s = sandbox();
        let r1 = run(&s, &o, &[E::Symlink("a", "../../..")]);
        let r2 = run(&s, &o, &[E::Dir("d"), E::Symlink("d/b", "../../x")]);
        if o.symlinks_within_dest {
            assert!(
                matches!(r1, Err(Error::SymlinkEscape { .. })),
                "{mode}: {r1:?}"
            );
            assert!(
                matches!(r2, Err(Error::SymlinkEscape { .. })),
                "{mode}: {r2:?}"
            );
        } else {
            // A container's symlinks only ever resolve inside it.
            r1.unwrap();
            r2.unwrap();
        }
        s.assert_nothing_outside();
    }
}

#[test]
fn writes_through_a_planted_symlink_stay_inside() {
    for (mode, o) in modes() {
        let s = sandbox();
        let out = s.outside.display().to_string();
        let r = run(
            &s,
            &o,
            &[E::Symlink("evil", &out), E::File("evil/x", b"pwned")],
        );
        let r2 = run(
            &s,
            &o,
            &[E::Symlink("up", "/../../../.."), E::File("up/pwned", b"x")],
        );
        match o.resolution {
            Resolution::Beneath => {
                assert!(r.as_ref().is_err_and(Error::is_refusal), "{mode}: {r:?}");
                assert!(r2.as_ref().is_err_and(Error::is_refusal), "{mode}: {r2:?}");
            }
            Resolution::InRoot => {
                // The host path does not exist in the root: the write fails there, never on the host.
                assert!(r.is_err(), "{mode}");
                // `/../../..` clamps at the root: `up/pwned` is the root's `pwned`.
                r2.unwrap();
                assert_eq!(std::fs::read(s.root.join("pwned")).unwrap(), b"x");
            }
        }
        s.assert_nothing_outside();
    }
}

#[test]
fn a_symlink_to_an_inside_directory_is_not_traversed_in_strict_modes() {
    for (mode, o) in modes() {
        let s = sandbox();
        let r = run(
            &s,
            &o,
            &[E::Dir("d"), E::Symlink("l", "d"), E::File("l/x", b"x")],
        );
        match o.resolution {
            Resolution::Beneath => {
                assert!(r.as_ref().is_err_and(Error::is_refusal), "{mode}: {r:?}")
            }
            Resolution::InRoot => {
                r.unwrap();
                assert_eq!(std::fs::read(s.root.join("d/x")).unwrap(), b"x");
            }
        }
        s.assert_nothing_outside();
    }
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    for (mode, o) in modes() {
        let s = sandbox();
        std::fs::write(s.outside.join("../secret"), b"host").unwrap();
        let r = run(&s, &o, &[E::Hardlink("pw", "../../../secret")]);
        assert!(r.as_ref().is_err_and(Error::is_refusal), "{mode}: {r:?}");
        // An absolute target names an archive member (layer) or a path below the destination: neither is
        // the host's file.
        let r = run(&s, &o, &[E::Hardlink("pw2", "/etc/passwd")]);
        assert!(r.is_err(), "{mode}");
        // Through a planted symlink to the outside.
        let out = s.outside.display().to_string();
        std::fs::write(s.outside.join("../victim"), b"host").unwrap();
        let r = run(
            &s,
            &o,
            &[
                E::Symlink("o", &format!("{out}/..")),
                E::Hardlink("pw3", "o/victim"),
            ],
        );
        assert!(r.is_err(), "{mode}");
        assert!(!s.root.join("pw").exists());
        assert!(!s.root.join("pw2").exists());
        assert!(!s.root.join("pw3").exists());
        let victim = std::fs::metadata(s.outside.join("../victim")).unwrap();
        assert_eq!(victim.nlink(), 1, "{mode}: host file linked");
        std::fs::remove_file(s.outside.join("../victim")).unwrap();
        std::fs::remove_file(s.outside.join("../secret")).unwrap();
        s.assert_nothing_outside();
    }
}

#[test]
fn layers_link_only_to_earlier_entries() {
    let s = sandbox();
    std::fs::write(s.root.join("preexisting"), b"x").unwrap();
    let r = run(&s, &Options::layer(), &[E::Hardlink("h", "preexisting")]);
    assert!(matches!(r, Err(Error::Unsafe { .. })), "{r:?}");
    run(
        &s,
        &Options::layer(),
        &[
            E::File("f", b"1"),
            E::Hardlink("h", "/f"),
            E::Hardlink("f", "f"),
        ],
    )
    .unwrap();
    assert_eq!(std::fs::metadata(s.root.join("h")).unwrap().nlink(), 2);
}

#[test]
fn device_nodes_only_where_allowed() {
    for (mode, o) in modes() {
        let s = sandbox();
        let r = run(&s, &o, &[E::Char("dev/kmsg", 1, 11)]);
        match o.devices {
            Devices::Refuse => assert!(matches!(r, Err(Error::Device { .. })), "{mode}: {r:?}"),
            Devices::Skip => {
                r.unwrap();
            }
            Devices::Create => unreachable!(),
        }
        assert!(!s.root.join("dev/kmsg").exists(), "{mode}");
    }
    let s = sandbox();
    let o = Options {
        devices: Devices::Create,
        ..Options::layer()
    };
    run(&s, &o, &[E::Char("dev/null", 1, 3)]).unwrap();
    let m = std::fs::symlink_metadata(s.root.join("dev/null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
}

#[test]
fn long_names_and_link_targets_round_trip() {
    let long_dir = "d".repeat(120);
    let name = format!("{long_dir}/{}", "f".repeat(150));
    let target = format!("/{}", "t".repeat(200));
    let link = format!("{long_dir}/l");
    for (mode, o) in modes() {
        let s = sandbox();
        run(
            &s,
            &o,
            &[
                E::File(&name, b"long"),
                E::Symlink(&link, &target),
                E::Hardlink("hl", &name),
            ],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(s.root.join(&name)).unwrap(),
            b"long",
            "{mode}"
        );
        assert_eq!(
            std::fs::read_link(s.root.join(&link)).unwrap(),
            Path::new(&target)
        );
        assert_eq!(std::fs::metadata(s.root.join("hl")).unwrap().nlink(), 2);
    }
}

#[test]
fn layer_whiteouts_become_overlay_form_and_stay_plain_elsewhere() {
    for (mode, o) in modes() {
        let s = sandbox();
        std::fs::create_dir_all(s.root.join("a/gone")).unwrap();
        std::fs::write(s.root.join("a/gone/f"), b"x").unwrap();
        run(
            &s,
            &o,
            &[
                E::File("a/.wh.gone", b""),
                E::Dir("o"),
                E::File("o/.wh..wh..opq", b""),
                E::File("a/.wh..wh.plnk", b""),
            ],
        )
        .unwrap();
        let wh = std::fs::symlink_metadata(s.root.join("a/gone")).unwrap();
        let mut v = [0u8; 4];
        let opaque = rustix::fs::getxattr(s.root.join("o"), OPAQUE_XATTR, &mut v);
        if o.whiteouts == Whiteouts::Overlay {
            assert!(wh.file_type().is_char_device(), "{mode}");
            assert_eq!(wh.rdev(), 0);
            assert_eq!(opaque.ok(), Some(1), "{mode}");
            assert!(!s.root.join("o/.wh..wh..opq").exists());
            assert!(!s.root.join("a/.wh..wh.plnk").exists());
        } else {
            assert!(wh.is_dir(), "{mode}");
            assert!(s.root.join("a/.wh.gone").is_file());
            assert!(s.root.join("o/.wh..wh..opq").is_file());
            assert!(opaque.is_err());
        }
    }
}

#[test]
fn whiteouts_of_dot_and_dot_dot_remove_nothing() {
    for (mode, o) in modes() {
        let s = sandbox();
        std::fs::write(s.outside.join("../keep"), b"host").unwrap();
        std::fs::create_dir(s.root.join("d")).unwrap();
        std::fs::write(s.root.join("d/f"), b"x").unwrap();
        for name in [".wh...", ".wh..", "d/.wh...", "d/.wh.."] {
            let r = run(&s, &o, &[E::File(name, b"")]);
            if o.whiteouts == Whiteouts::Overlay {
                assert!(
                    matches!(r, Err(Error::Unsafe { .. })),
                    "{mode} {name}: {r:?}"
                );
            }
        }
        assert_eq!(
            std::fs::read(s.outside.join("../keep")).unwrap(),
            b"host",
            "{mode}"
        );
        assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), b"x", "{mode}");
        std::fs::remove_file(s.outside.join("../keep")).unwrap();
    }
}

#[test]
fn layer_keeps_dot_paths_replacements_times_and_size() {
    let s = sandbox();
    let stats = extract_into(
        &s.root,
        &tar(&[
            E::Dir("./a/"),
            E::File("./a/f", b"12345"),
            E::File("a/f", b"123"),
            E::Hardlink("a/h", "a/f"),
            E::Symlink("a/s", "/abs/target"),
            E::File("implicit/dir/file", b"1"),
            E::Dir("a/f2"),
            E::File("a/f2", b"file replaces dir"),
        ])[..],
        &Options::layer(),
    )
    .unwrap();
    // Docker's layer size sums every file entry (the replaced 5-byte version too) and symlink targets.
    assert_eq!(stats.size, 5 + 3 + 11 + 1 + 17);
    assert_eq!(stats.entries, 8);
    assert_eq!(std::fs::read(s.root.join("a/f")).unwrap(), b"123");
    assert!(s.root.join("a/f2").is_file());
    let m = std::fs::metadata(s.root.join("a")).unwrap();
    assert_eq!(m.mtime(), 1_700_000_000);
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    let m = std::fs::metadata(s.root.join("implicit")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    s.assert_nothing_outside();
}

#[test]
fn layer_keeps_owners_setuid_xattrs_and_fifos() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append_data(&mut h, "bin/suid", &b"#!"[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(EntryType::Fifo);
    h.set_size(0);
    h.set_mode(0o640);
    h.set_cksum();
    b.append_data(&mut h, "run/fifo", std::io::empty()).unwrap();
    let t = b.into_inner().unwrap();
    extract_into(&s.root, &t[..], &Options::layer()).unwrap();
    let m = std::fs::symlink_metadata(s.root.join("bin/suid")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
        (1000, 1001, 0o4755, 1_600_000_000)
    );
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(s.root.join("bin/suid"), "user.berth", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"yes");
    let f = std::fs::symlink_metadata(s.root.join("run/fifo")).unwrap();
    assert!(f.file_type().is_fifo());
    assert_eq!(f.mode() & 0o7777, 0o640);
}

#[test]
fn a_layer_root_entry_sets_the_roots_metadata() {
    let s = sandbox();
    let mut w = Writer::new(Vec::new(), WriteOptions::default());
    let mut h = EntryHeader::new(EntryType::Directory, 0o711);
    h.uid = 7;
    h.mtime = 1_500_000_000;
    w.append(&h, b"./", None, std::io::empty()).unwrap();
    let t = w.finish().unwrap();
    extract_into(&s.root, &t[..], &Options::layer()).unwrap();
    let m = std::fs::metadata(&s.root).unwrap();
    assert_eq!(
        (m.uid(), m.mode() & 0o7777, m.mtime()),
        (7, 0o711, 1_500_000_000)
    );
}

#[test]
fn container_extraction_resolves_the_containers_own_symlinks_inside_it() {
    let s = sandbox();
    std::fs::create_dir_all(s.root.join("tmp")).unwrap();
    std::fs::create_dir_all(s.root.join("srv")).unwrap();
    std::fs::write(s.root.join("etc-shadow"), b"container shadow").unwrap();
    std::os::unix::fs::symlink("/", s.root.join("srv/evil")).unwrap();
    std::os::unix::fs::symlink("../../../../", s.root.join("srv/evil2")).unwrap();
    std::os::unix::fs::symlink(&s.outside, s.root.join("srv/host")).unwrap();
    for walk in [false, true] {
        let o = Options {
            force_walk: walk,
            ..Options::container("/srv")
        };
        let t = tar(&[
            E::File("/abs", b"3"),
            E::File("evil/tmp/pwned", b"1"),
            E::File("evil2/tmp/pwned2", b"2"),
            E::Hardlink("hl", "evil/etc-shadow"),
        ]);
        extract(s.fd().as_fd(), "/srv", &t[..], &o).unwrap();
        assert_eq!(std::fs::read(s.root.join("srv/abs")).unwrap(), b"3");
        assert_eq!(std::fs::read(s.root.join("tmp/pwned")).unwrap(), b"1");
        assert_eq!(std::fs::read(s.root.join("tmp/pwned2")).unwrap(), b"2");
        assert_eq!(
            std::fs::read(s.root.join("srv/hl")).unwrap(),
            b"container shadow"
        );
        let t = tar(&[E::File("host/x", b"x")]);
        assert!(extract(s.fd().as_fd(), "/srv", &t[..], &o).is_err());
        let t = tar(&[E::File("../../x", b"x")]);
        let e = extract(s.fd().as_fd(), "/srv", &t[..], &o).unwrap_err();
        assert!(e.to_string().contains("is outside of \"/srv\""), "{e}");
        for f in ["srv/abs", "tmp/pwned", "tmp/pwned2", "srv/hl"] {
            std::fs::remove_file(s.root.join(f)).unwrap();
        }
    }
    s.assert_nothing_outside();
}

#[test]
fn no_overwrite_dir_non_dir_is_honoured() {
    let s = sandbox();
    std::fs::create_dir(s.root.join("etc")).unwrap();
    std::fs::write(s.root.join("file"), b"x").unwrap();
    let o = Options {
        no_overwrite_dir_non_dir: true,
        ..Options::container("/")
    };
    let e = run(&s, &o, &[E::File("etc", b"x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot overwrite directory \"/etc\" with non-directory \"/\""
    );
    let e = run(&s, &o, &[E::Dir("file")]).unwrap_err();
    assert!(
        e.to_string().contains("cannot overwrite non-directory"),
        "{e}"
    );
    // Without the option the new entry replaces the old one.
    run(
        &s,
        &Options::container("/"),
        &[E::File("etc", b"x"), E::Dir("file")],
    )
    .unwrap();
    assert!(s.root.join("etc").is_file());
    assert!(s.root.join("file").is_dir());
}

#[test]
fn fixed_owner_and_rebase_apply_to_every_entry() {
    let s = sandbox();
    let o = Options {
        owner: Owner::Fixed { uid: 55, gid: 66 },
        rebase: Some(Rebase {
            old: "tree".into(),
            new: "copy".into(),
        }),
        ..Options::container("/")
    };
    run(
        &s,
        &o,
        &[
            E::Dir("tree"),
            E::File("tree/f", b"x"),
            E::Hardlink("tree/h", "tree/f"),
        ],
    )
    .unwrap();
    let m = std::fs::metadata(s.root.join("copy/f")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.nlink()), (55, 66, 2));
    assert!(!s.root.join("tree").exists());
}

#[test]
fn a_malformed_tar_is_a_read_error() {
    let s = sandbox();
    let mut t = tar(&[E::File("f", b"data")]);
    t[148] ^= 0x55; // the header checksum
    let r = extract_into(&s.root, &t[..], &Options::layer());
    assert!(matches!(r, Err(Error::Read(_))), "{r:?}");
}

// ---- the writer ----

fn read_back(t: &[u8]) -> Vec<(String, EntryType, Option<String>)> {
    let mut a = tar::Archive::new(t);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned()),
            )
        })
        .collect()
}

#[test]
fn trees_are_archived_sorted_with_hard_links_and_without_following_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("root");
    std::fs::create_dir_all(r.join("d/sub")).unwrap();
    std::fs::write(r.join("d/b"), b"hello").unwrap();
    std::fs::hard_link(r.join("d/b"), r.join("d/a")).unwrap();
    std::os::unix::fs::symlink("/etc", r.join("d/link")).unwrap();
    let root = rustix::fs::open(&r, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut w = Writer::new(Vec::new(), WriteOptions::default());
    w.append_at(&root, b"d", b"renamed").unwrap();
    let out = w.finish().unwrap();
    assert_eq!(
        read_back(&out),
        vec![
            ("renamed/".into(), EntryType::Directory, None),
            ("renamed/a".into(), EntryType::Regular, None),
            (
                "renamed/b".into(),
                EntryType::Link,
                Some("renamed/a".into())
            ),
            (
                "renamed/link".into(),
                EntryType::Symlink,
                Some("/etc".into())
            ),
            ("renamed/sub/".into(), EntryType::Directory, None),
        ]
    );
}

#[test]
fn written_long_names_xattrs_and_times_extract_back() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let long = "n".repeat(140);
    std::fs::create_dir_all(src.join(&long)).unwrap();
    std::fs::write(src.join(&long).join("f"), b"content").unwrap();
    std::os::unix::fs::symlink("t".repeat(130), src.join("l")).unwrap();
    std::fs::write(src.join("f0"), b"0").unwrap();
    rustix::fs::setxattr(
        src.join("f0"),
        "user.x",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_234_567_890,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_234_567_890,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        src.join("f0"),
        &ts,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let fd = rustix::fs::open(&src, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut w = Writer::new(
        Vec::new(),
        WriteOptions {
            xattrs: true,
            ..WriteOptions::default()
        },
    );
    w.append_dir(&fd, b"", None).unwrap();
    let t = w.finish().unwrap();
    let s = sandbox();
    extract_into(&s.root, &t[..], &Options::layer()).unwrap();
    assert_eq!(
        std::fs::read(s.root.join(&long).join("f")).unwrap(),
        b"content"
    );
    assert_eq!(
        std::fs::read_link(s.root.join("l")).unwrap(),
        Path::new(&"t".repeat(130))
    );
    let mut v = [0u8; 4];
    let n = rustix::fs::getxattr(s.root.join("f0"), "user.x", &mut v).unwrap();
    assert_eq!(&v[..n], b"v");
    assert_eq!(
        std::fs::metadata(s.root.join("f0")).unwrap().mtime(),
        1_234_567_890
    );
}

#[test]
fn overlay_whiteouts_are_written_in_aufs_form_and_read_back() {
    let d = tempfile::tempdir().unwrap();
    let upper = d.path().join("upper");
    std::fs::create_dir_all(upper.join("dir")).unwrap();
    std::fs::create_dir_all(upper.join("opq")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("dir/gone"),
        rustix::fs::FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::setxattr(
        upper.join("opq"),
        OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // Mount points a runtime made: left out by name, with what is below them.
    std::fs::create_dir_all(upper.join("proc/self")).unwrap();
    std::fs::write(upper.join("dir/hosts"), b"").unwrap();
    let fd = rustix::fs::open(&upper, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut w = Writer::new(
        Vec::new(),
        WriteOptions {
            aufs_whiteouts: true,
            xattrs: true,
            exclude: vec![b"proc".to_vec(), b"dir/hosts".to_vec()],
            ..WriteOptions::default()
        },
    );
    w.append_dir(&fd, b"", None).unwrap();
    let t = w.finish().unwrap();
    let names: Vec<(String, EntryType)> =
        read_back(&t).into_iter().map(|(n, k, _)| (n, k)).collect();
    assert_eq!(
        names,
        vec![
            ("dir/".into(), EntryType::Directory),
            ("dir/.wh.gone".into(), EntryType::Regular),
            ("opq/".into(), EntryType::Directory),
            ("opq/.wh..wh..opq".into(), EntryType::Regular),
        ]
    );
    let s = sandbox();
    extract_into(&s.root, &t[..], &Options::layer()).unwrap();
    assert!(std::fs::symlink_metadata(s.root.join("dir/gone"))
        .unwrap()
        .file_type()
        .is_char_device());
    let mut v = [0u8; 2];
    assert_eq!(
        rustix::fs::getxattr(s.root.join("opq"), OPAQUE_XATTR, &mut v).ok(),
        Some(1)
    );
}

#[test]
fn an_id_map_shifts_owners_in_and_back_out() {
    let s = sandbox();
    let range = |container, host, size| IdRange {
        container,
        host,
        size,
    };
    let map = IdMap {
        uids: vec![range(0, 100_000, 65536)],
        gids: vec![range(0, 200_000, 65536)],
    };
    let mut w = Writer::new(Vec::new(), WriteOptions::default());
    let mut h = EntryHeader::new(EntryType::Regular, 0o4755);
    h.uid = 1000;
    h.gid = 1001;
    // `implied/` has no entry of its own: the extraction makes it.
    w.append(&h, b"implied/suid", None, std::io::empty())
        .unwrap();
    w.append(
        &EntryHeader::new(EntryType::Regular, 0o644),
        b"root-file",
        None,
        std::io::empty(),
    )
    .unwrap();
    w.append(
        &EntryHeader::new(EntryType::Regular, 0o600),
        b".wh.gone",
        None,
        std::io::empty(),
    )
    .unwrap();
    let t = w.finish().unwrap();
    let opts = Options {
        id_map: Some(map.clone()),
        ..Options::layer()
    };
    extract_into(&s.root, &t[..], &opts).unwrap();
    let owner = |p: &str| {
        let m = std::fs::symlink_metadata(s.root.join(p)).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    assert_eq!(owner("implied/suid"), (101_000, 201_001, 0o4755));
    assert_eq!(owner("implied"), (100_000, 200_000, 0o755));
    assert_eq!(owner("root-file"), (100_000, 200_000, 0o644));
    // A file the mapping cannot hold: the archive's ids are outside it. Refused in dockerd's words.
    let mut w = Writer::new(Vec::new(), WriteOptions::default());
    let mut h = EntryHeader::new(EntryType::Regular, 0o644);
    h.uid = 70_000;
    w.append(&h, b"far", None, std::io::empty()).unwrap();
    let far = w.finish().unwrap();
    let e = extract_into(&s.root, &far[..], &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("container ID 70000 cannot be mapped to a host ID"),
        "{e}"
    );
    assert!(!s.root.join("far").exists());

    // Written back through the map: the container's ids again; a host id outside it shows as the
    // kernel's overflow id; the overlay whiteout is 0:0.
    rustix::fs::chown(
        s.root.join("root-file"),
        Some(rustix::fs::Uid::from_raw(5)),
        None,
    )
    .unwrap();
    let mut w = Writer::new(
        Vec::new(),
        WriteOptions {
            id_map: Some(map),
            aufs_whiteouts: true,
            ..WriteOptions::default()
        },
    );
    let root =
        rustix::fs::open(&s.root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    w.append_dir(&root, b"", None).unwrap();
    let out = w.finish().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&out[..]).entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        seen.insert(
            e.path().unwrap().to_string_lossy().into_owned(),
            (h.uid().unwrap(), h.gid().unwrap()),
        );
    }
    assert_eq!(seen["implied/suid"], (1000, 1001), "{seen:?}");
    assert_eq!(seen["implied/"], (0, 0), "{seen:?}");
    assert_eq!(seen["root-file"], (u64::from(OVERFLOW_ID), 0), "{seen:?}");
    assert_eq!(seen[".wh.gone"], (0, 0), "{seen:?}");
}

/// An observer that offers one file as the candidate of every regular file, and records what it is told.
struct Offering {
    candidate: PathBuf,
    data: Vec<u8>,
    reused: Vec<String>,
    written: Vec<String>,
    current: String,
}

impl Observer for Offering {
    fn entry(&mut self, e: &ObservedEntry<'_>) {
        self.current = String::from_utf8_lossy(e.path).into_owned();
    }
    fn data(&mut self, chunk: &[u8]) {
        self.data.extend_from_slice(chunk);
    }
    fn candidate(&mut self) -> Option<std::fs::File> {
        std::fs::File::open(&self.candidate).ok()
    }
    fn reused(&mut self) {
        self.reused.push(self.current.clone());
    }
    fn written(&mut self, file: std::os::fd::BorrowedFd<'_>) {
        assert!(rustix::fs::fstat(file).is_ok());
        self.written.push(self.current.clone());
    }
}

/// A regular file whose content is its candidate's is the candidate linked in place, with the entry's
/// metadata, and the observer gets none of its content; one that differs anywhere (or in size) is
/// written whole with the archive's content, all of which the observer sees, and the candidate is left
/// as it was.
#[test]
fn a_candidate_with_the_same_content_is_linked_and_any_other_is_written() {
    let content: Vec<u8> = (0..2_600_000u32).map(|i| (i % 241) as u8).collect();
    let sb = sandbox();
    let candidate = sb.outside.join("candidate");
    std::fs::write(&candidate, &content).unwrap();
    let cand_ino = std::fs::metadata(&candidate).unwrap().ino();
    let mut observer = Offering {
        candidate: candidate.clone(),
        data: Vec::new(),
        reused: Vec::new(),
        written: Vec::new(),
        current: String::new(),
    };
    let mut opts = Options::layer();
    opts.xattrs = false;
    let run = |observer: &mut Offering, name: &str, body: &[u8]| {
        let t = tar(&[E::File(name, body)]);
        extract_observed(sb.fd().as_fd(), "", &t[..], &opts, Some(observer)).unwrap();
        std::fs::read(sb.root.join(name)).unwrap()
    };

    assert_eq!(run(&mut observer, "same", &content), content);
    assert_eq!(
        std::fs::metadata(sb.root.join("same")).unwrap().ino(),
        cand_ino
    );
    assert_eq!(observer.reused, ["same"]);
    assert!(observer.written.is_empty() && observer.data.is_empty());

    for (at, name) in [
        (0, "first"),
        (1_300_000, "middle"),
        (content.len() - 1, "last"),
    ] {
        let mut changed = content.clone();
        changed[at] ^= 0x55;
        observer.data.clear();
        assert_eq!(run(&mut observer, name, &changed), changed, "{name}");
        assert!(
            observer.data == changed,
            "{name}: the observer saw all of it"
        );
        assert_ne!(
            std::fs::metadata(sb.root.join(name)).unwrap().ino(),
            cand_ino
        );
        assert_eq!(observer.written.last().map(String::as_str), Some(name));
    }
    observer.data.clear();
    let shorter = &content[..content.len() - 1];
    assert_eq!(run(&mut observer, "shorter", shorter), shorter);
    assert!(observer.data == shorter);
    assert_eq!(observer.reused, ["same"]);
    assert!(
        std::fs::read(&candidate).unwrap() == content,
        "the candidate is untouched"
    );
}

#[test]
fn remove_below_removes_trees_inside_only_and_gives_the_parent_its_time() {
    let s = sandbox();
    std::fs::create_dir_all(s.root.join("d/tree/deep")).unwrap();
    std::fs::write(s.root.join("d/tree/deep/f"), "x").unwrap();
    std::fs::write(s.root.join("d/file"), "y").unwrap();
    std::fs::write(s.outside.join("keep"), "outside").unwrap();
    std::os::unix::fs::symlink(&s.outside, s.root.join("out")).unwrap();
    let fd = s.fd();

    assert!(remove_below(fd.as_fd(), "d/tree", Some(1_000_000)).unwrap());
    assert!(!s.root.join("d/tree").exists());
    assert_eq!(
        std::fs::metadata(s.root.join("d")).unwrap().mtime(),
        1_000_000
    );
    assert!(remove_below(fd.as_fd(), "d/file", None).unwrap());
    assert!(
        !remove_below(fd.as_fd(), "d/file", None).unwrap(),
        "already gone"
    );
    assert!(!remove_below(fd.as_fd(), "nothing/here", None).unwrap());

    // Never through a symlink, never above the root.
    assert!(!remove_below(fd.as_fd(), "out/keep", None).unwrap());
    assert!(s.outside.join("keep").exists());
    assert!(remove_below(fd.as_fd(), "../root", None).is_err());
    assert!(remove_below(fd.as_fd(), "", None).is_err());
    // The symlink itself is an entry like any other.
    assert!(remove_below(fd.as_fd(), "out", None).unwrap());
    assert!(s.outside.join("keep").exists());
    std::fs::remove_file(s.outside.join("keep")).unwrap();
    s.assert_nothing_outside();
}

#[test]
fn a_stream_may_end_right_after_the_last_files_data_but_nowhere_else() {
    let full = tar(&[
        E::File("a", b"first"),
        E::File("b", b"the last file's data."),
    ]);
    // Header a, data a (one block), header b, data b: where b's data ends.
    let data_end = 3 * 512 + 21;
    for (cut, ok) in [
        (data_end, true),       // no padding, no end blocks (the docker CLI's -f context)
        (data_end + 100, true), // part of the padding
        (4 * 512, true),        // the padding, no end blocks
        (data_end - 1, false),  // a byte of data missing
        (3 * 512 + 10, false),  // most of the data missing
        (2 * 512 + 200, false), // within b's header
    ] {
        let s = sandbox();
        let got = extract(s.fd().as_fd(), "", &full[..cut], &Options::layer());
        assert_eq!(got.is_ok(), ok, "cut at {cut}: {got:?}");
        if ok {
            assert_eq!(
                std::fs::read(s.root.join("b")).unwrap(),
                b"the last file's data."
            );
        }
    }
    // Past the padding, a part of a block is a cut header, not an end.
    let mut cut_header = full[..data_end].to_vec();
    cut_header.extend_from_slice(&[0u8; 600]);
    cut_header.extend_from_slice(b"junk");
    let s = sandbox();
    assert!(extract(s.fd().as_fd(), "", &cut_header[..], &Options::layer()).is_err());
}

#[test]
fn a_big_layer_file_gets_its_bytes_and_size_and_a_cut_one_only_what_came() {
    // Big enough for the layer path's preallocation and its writeback steps (8 MiB), not a multiple of
    // either, nor of a block.
    let big: Vec<u8> = (0..(9 << 20) + 777).map(|i| (i * 31 % 253) as u8).collect();
    let full = tar(&[E::File("big", &big), E::File("small", b"after")]);
    let s = sandbox();
    extract(s.fd().as_fd(), "", &full[..], &Options::layer()).unwrap();
    let got = std::fs::read(s.root.join("big")).unwrap();
    assert!(got == big, "{} bytes read back", got.len());
    assert_eq!(std::fs::read(s.root.join("small")).unwrap(), b"after");
    // Blocks allocated up front beyond what a file holds would show in its allocated size.
    let meta = std::fs::metadata(s.root.join("big")).unwrap();
    assert!(
        meta.blocks() * 512 < big.len() as u64 + (1 << 20),
        "{} blocks",
        meta.blocks()
    );

    // The stream ends 2 MiB into the file's data: an error, and the file holds what came (the header's
    // size was never given to it).
    let s = sandbox();
    let cut = 512 + (2 << 20);
    let err = extract(s.fd().as_fd(), "", &full[..cut], &Options::layer());
    assert!(err.is_err());
    assert_eq!(
        std::fs::metadata(s.root.join("big")).unwrap().len(),
        2 << 20
    );
}
