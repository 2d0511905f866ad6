//! Builders for image archives in the legacy `docker save` layout, including hostile ones whose entries a
//! well-behaved tar library would refuse to write.

use sha2::{Digest, Sha256};

/// One entry of a layer tar, described loosely enough to be hostile.
pub enum Entry<'a> {
    /// A regular file.
    File(&'a str, &'a [u8]),
    /// A directory.
    Dir(&'a str),
    /// A symlink `name -> target`.
    Symlink(&'a str, &'a str),
    /// A hard link `name` to `target`.
    Hardlink(&'a str, &'a str),
    /// A character device.
    CharDevice(&'a str, u32, u32),
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A header whose name bytes are written raw (so `..` and absolute names get through).
fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    assert!(name.len() < 100, "test entry name too long: {name}");
    let mut h = tar::Header::new_ustar();
    {
        let raw = h.as_ustar_mut().expect("ustar header");
        raw.name = [0; 100];
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let raw = h.as_ustar_mut().expect("ustar header");
    raw.linkname = [0; 100];
    raw.linkname[..target.len()].copy_from_slice(target.as_bytes());
}

/// A layer tar holding `entries` exactly as described.
pub fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            Entry::File(n, d) => (header(n, tar::EntryType::Regular, d.len() as u64), d),
            Entry::Dir(n) => {
                let mut h = header(n, tar::EntryType::Directory, 0);
                h.set_mode(0o755);
                (h, &[])
            }
            Entry::Symlink(n, t) => {
                let mut h = header(n, tar::EntryType::Symlink, 0);
                set_link(&mut h, t);
                (h, &[])
            }
            Entry::Hardlink(n, t) => {
                let mut h = header(n, tar::EntryType::Link, 0);
                set_link(&mut h, t);
                (h, &[])
            }
            Entry::CharDevice(n, major, minor) => {
                let mut h = header(n, tar::EntryType::Char, 0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                (h, &[])
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A legacy `docker save` archive of one image made of `layers`, tagged `tag`.
pub fn legacy_archive(tag: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-11-29T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created": "2026-11-29T00:00:00Z", "created_by": "test"})).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let layer_names: Vec<String> = (0..layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layer_names,
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    for (name, data) in layer_names.iter().zip(layers) {
        add(name, data);
    }
    add(&config_name, &config);
    add("manifest.json", &manifest);
    b.into_inner().unwrap()
}
