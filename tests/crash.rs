//! Crash safety: a daemon SIGKILLed at any point of a load leaves no half image, and the next start removes
//! the leftovers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::archive::{layer, legacy_archive, Entry};
use common::Daemon;

fn big_archive() -> Vec<u8> {
    // Three 8 MiB layers of incompressible data, so a load takes long enough to be interrupted.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let layers: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let data: Vec<u8> = (0..8 << 20)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            layer(&[Entry::File(&format!("file{i}"), &data)])
        })
        .collect();
    legacy_archive("crash:1", &layers)
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn sigkill_during_load_leaves_nothing_half_made() {
    let archive = big_archive();
    for fraction in [0.2, 0.5, 0.8, 1.0] {
        let mut d = Daemon::start();
        let cut = (archive.len() as f64 * fraction) as usize;
        let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
        write!(
            s,
            "POST /images/load?quiet=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            archive.len()
        )
        .unwrap();
        s.write_all(&archive[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        d.kill();
        drop(s);
        d.spawn();

        let images = d.get_json("/images/json");
        let store = d.data_root().join("image");
        match images.as_array().unwrap().len() {
            0 => {
                assert_eq!(
                    count_entries(&store.join("blobs/sha256")),
                    0,
                    "cut at {fraction}: blobs left"
                );
                assert_eq!(
                    count_entries(&store.join("snapshots")),
                    0,
                    "cut at {fraction}: snapshots left"
                );
                assert_eq!(
                    count_entries(&store.join("ingest")),
                    0,
                    "cut at {fraction}: ingest left"
                );
            }
            1 => {
                // The load finished before the kill: then it must be whole.
                let img = d.get_json("/images/crash:1/json");
                assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 3);
                for dir in img["GraphDriver"]["Data"]["LowerDir"]
                    .as_str()
                    .unwrap_or("")
                    .split(':')
                    .filter(|s| !s.is_empty())
                {
                    assert!(Path::new(dir).is_dir(), "{dir}");
                }
            }
            n => panic!("{n} images after one load"),
        }
        // Whatever happened, the same archive loads now.
        let r = d.request("POST", "/images/load?quiet=1", &archive);
        assert!(r.text().contains("Loaded image: crash:1"), "{}", r.text());
    }
}
