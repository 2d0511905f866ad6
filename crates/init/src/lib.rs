//! `docker-init`, the init `--init` runs as the container's PID 1 (Docker ships tini there): it starts
//! the command in a process group of its own (the terminal's foreground one with `-t`), forwards every
//! signal it gets to it, reaps the orphans the kernel re-parents to it, and
//! exits with the command's status (128 + N for a signal). The program (`program/docker_init.rs`) is
//! built statically by `build.rs` and embedded here; the engine writes it to a read-only file and binds
//! it read-only into the container, so the container never sees, let alone writes, the berth binary.

/// The static `docker-init` executable.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/docker-init"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_init_is_a_static_elf() {
        assert_eq!(&BINARY[..4], b"\x7fELF");
        // No PT_INTERP program header: it needs no dynamic loader from the image.
        let u16_at = |o: usize| u16::from_le_bytes([BINARY[o], BINARY[o + 1]]) as usize;
        let mut phoff = [0u8; 8];
        phoff.copy_from_slice(&BINARY[0x20..0x28]);
        let phoff = u64::from_le_bytes(phoff) as usize;
        let (size, count) = (u16_at(0x36), u16_at(0x38));
        assert!(count > 0);
        for i in 0..count {
            let at = phoff + i * size;
            let p_type =
                u32::from_le_bytes([BINARY[at], BINARY[at + 1], BINARY[at + 2], BINARY[at + 3]]);
            assert_ne!(p_type, 3, "docker-init has a program interpreter");
        }
    }
}
