//! User-namespace id mappings, for trees whose owners are shifted: a daemon with `--userns-remap` stores
//! its layers and containers with host ids (container uid 0 is the subordinate base), and its archives
//! (`export`, `cp`, `commit`, builds) carry the ids as the container sees them.

/// One contiguous range of a mapping, as a line of `/proc/PID/uid_map` says it: `size` ids from
/// `container` inside are `host` and up outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// How many ids.
    pub size: u32,
}

/// The uid and gid mappings of a user namespace. Extraction ([`crate::Options::id_map`]) takes an
/// archive's ids as container ids and writes host ids; a [`crate::Writer`]
/// ([`crate::WriteOptions::id_map`]) does the reverse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    /// uid ranges, in the order they are written to `uid_map`.
    pub uids: Vec<IdRange>,
    /// gid ranges, in the order they are written to `gid_map`.
    pub gids: Vec<IdRange>,
}

/// The id the kernel shows inside a user namespace for a host id the namespace does not map
/// (`/proc/sys/kernel/overflowuid`'s default).
pub const OVERFLOW_ID: u32 = 65534;

fn to_host(ranges: &[IdRange], id: u64) -> Option<u32> {
    let id = u32::try_from(id).ok()?;
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.container)?;
        (off < r.size).then(|| r.host.checked_add(off)).flatten()
    })
}

fn to_container(ranges: &[IdRange], id: u64) -> Option<u32> {
    let id = u32::try_from(id).ok()?;
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.host)?;
        (off < r.size)
            .then(|| r.container.checked_add(off))
            .flatten()
    })
}

impl IdMap {
    /// The host uid of container uid `id`, if the mapping covers it.
    pub fn uid_to_host(&self, id: u64) -> Option<u32> {
        to_host(&self.uids, id)
    }

    /// The host gid of container gid `id`, if the mapping covers it.
    pub fn gid_to_host(&self, id: u64) -> Option<u32> {
        to_host(&self.gids, id)
    }

    /// The container uid of host uid `id`, if the mapping covers it.
    pub fn uid_to_container(&self, id: u64) -> Option<u32> {
        to_container(&self.uids, id)
    }

    /// The container gid of host gid `id`, if the mapping covers it.
    pub fn gid_to_container(&self, id: u64) -> Option<u32> {
        to_container(&self.gids, id)
    }

    /// The host uid and gid of the container's root (dockerd's `RootPair`); `(0, 0)` when the mapping
    /// does not cover 0, as for no mapping at all.
    pub fn root(&self) -> (u32, u32) {
        (
            self.uid_to_host(0).unwrap_or(0),
            self.gid_to_host(0).unwrap_or(0),
        )
    }

    /// Host ids as the container sees them: an id outside the mapping shows as [`OVERFLOW_ID`], as the
    /// kernel shows it inside the namespace.
    pub fn shown_in_container(&self, uid: u64, gid: u64) -> (u64, u64) {
        (
            self.uid_to_container(uid).unwrap_or(OVERFLOW_ID).into(),
            self.gid_to_container(gid).unwrap_or(OVERFLOW_ID).into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_ranges() -> IdMap {
        let r = |container, host, size| IdRange {
            container,
            host,
            size,
        };
        IdMap {
            uids: vec![r(0, 100_000, 65536), r(65536, 300_000, 10)],
            gids: vec![r(0, 200_000, 1000)],
        }
    }

    #[test]
    fn ids_map_through_every_range_in_order_and_stop_at_its_end() {
        let m = two_ranges();
        assert_eq!(m.uid_to_host(0), Some(100_000));
        assert_eq!(m.uid_to_host(65535), Some(165_535));
        assert_eq!(m.uid_to_host(65536), Some(300_000));
        assert_eq!(m.uid_to_host(65546), None);
        assert_eq!(m.uid_to_host(u64::from(u32::MAX) + 1), None);
        assert_eq!(m.gid_to_host(999), Some(200_999));
        assert_eq!(m.gid_to_host(1000), None);
        assert_eq!(m.uid_to_container(300_009), Some(65545));
        assert_eq!(m.uid_to_container(0), None);
        assert_eq!(m.root(), (100_000, 200_000));
        assert_eq!(m.shown_in_container(0, 200_001), (65534, 1));
    }
}
