//! cgroup v2 device control: `linux.resources.devices` compiled into a small eBPF program of
//! type `BPF_PROG_TYPE_CGROUP_DEVICE`, assembled by hand and attached to the cgroup.
//!
//! Semantics follow the v1 lists the rules were written for: later rules override earlier
//! ones (the program checks them last to first and the first match decides); an allow rule
//! matches when every requested access is in its set, a deny rule when any is; a request no
//! rule matches is allowed, as a new v1 cgroup inherits "a *:* rwm" from its parent.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND_K: u8 = 0x57; // dst &= imm (64-bit)
const RSH_K: u8 = 0x77; // dst >>= imm
const MOV_K: u8 = 0xb7; // dst = imm
const JA: u8 = 0x05; // pc += off
const JNE_K: u8 = 0x55; // if dst != imm: pc += off
const JSET_K: u8 = 0x45; // if dst & imm: pc += off
const EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(s: &str) -> i32 {
    s.chars().fold(0, |a, c| {
        a | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// A rule in the form the program checks: type (0 = any), major/minor (None = any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub allow: bool,
    /// `DEV_CHAR`, `DEV_BLOCK`, or 0 for both.
    pub kind: i32,
    /// Major number, or any.
    pub major: Option<u32>,
    /// Minor number, or any.
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: i32,
}

impl Rule {
    /// Converts an OCI device cgroup rule.
    pub fn from_oci(d: &LinuxDeviceCgroup) -> Rule {
        Rule {
            allow: d.allow(),
            kind: match d.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => 0,
                LinuxDeviceType::B => DEV_BLOCK,
                _ => DEV_CHAR,
            },
            major: d.major().and_then(|m| u32::try_from(m).ok()),
            minor: d.minor().and_then(|m| u32::try_from(m).ok()),
            access: access_bits(d.access().as_deref().unwrap_or("rwm")),
        }
    }

    /// Parses a v1 list line such as `c 1:3 rwm` or `b *:* m`.
    pub fn parse_v1(line: &str, allow: bool) -> Option<Rule> {
        let mut it = line.split_whitespace();
        let kind = match it.next()? {
            "a" => 0,
            "b" => DEV_BLOCK,
            "c" => DEV_CHAR,
            _ => return None,
        };
        let (maj, min) = it.next()?.split_once(':')?;
        let num = |s: &str| {
            if s == "*" {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        Some(Rule {
            allow,
            kind,
            major: num(maj)?,
            minor: num(min)?,
            access: access_bits(it.next()?),
        })
    }
}

/// Assembles the program for `rules` (in spec order).
pub fn assemble(rules: &[Rule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor
    let mut p = vec![
        ins(LDX_W, 2, 1, 0, 0),
        ins(LDX_W, 3, 1, 0, 0),
        ins(AND_K, 2, 0, 0, 0xffff),
        ins(RSH_K, 3, 0, 0, 16),
        ins(LDX_W, 4, 1, 4, 0),
        ins(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut b: Vec<Insn> = Vec::new();
        // Each check jumps to the end of the block ("skip") when it does not match; the
        // offsets are fixed up once the block's length is known (marked with off = i16::MIN).
        if r.kind != 0 {
            b.push(ins(JNE_K, 2, 0, i16::MIN, r.kind));
        }
        if let Some(m) = r.major {
            b.push(ins(JNE_K, 4, 0, i16::MIN, m as i32));
        }
        if let Some(m) = r.minor {
            b.push(ins(JNE_K, 5, 0, i16::MIN, m as i32));
        }
        if r.allow {
            // Some requested access outside the rule's set: not this rule.
            b.push(ins(JSET_K, 3, 0, i16::MIN, !r.access & 7));
        } else {
            // None of the requested access in the rule's set: not this rule.
            b.push(ins(JSET_K, 3, 0, 1, r.access));
            b.push(ins(JA, 0, 0, i16::MIN, 0));
        }
        b.push(ins(MOV_K, 0, 0, 0, i32::from(r.allow)));
        b.push(ins(EXIT, 0, 0, 0, 0));
        let len = b.len();
        for (i, x) in b.iter_mut().enumerate() {
            if x.off == i16::MIN {
                x.off = (len - i - 1) as i16;
            }
        }
        p.extend(b);
    }
    p.push(ins(MOV_K, 0, 0, 0, 1));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` of the size passed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup directory `dir`.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = assemble(rules);
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 4096];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&15u32.to_ne_bytes()); // BPF_PROG_TYPE_CGROUP_DEVICE
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log_level
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    let fail = |what: &str, e: std::io::Error| Error::Cgroup {
        path: dir.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
    };
    let fd = bpf(5, &mut attr).map_err(|e| {
        let msg = String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .to_string();
        fail(&format!("load device program ({msg})"), e)
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that we own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| fail("open", e))?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&6u32.to_ne_bytes()); // BPF_CGROUP_DEVICE
    attr[12..16].copy_from_slice(&2u32.to_ne_bytes()); // BPF_F_ALLOW_MULTI
    bpf(8, &mut attr).map_err(|e| fail("attach device program", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on (type, access, major, minor) with the subset of eBPF it uses.
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i64::from(i.off)) as usize;
                }
            };
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1);
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                AND_K => r[dst] &= i.imm as u64,
                RSH_K => r[dst] >>= i.imm,
                MOV_K => r[dst] = i.imm as u64,
                JA => jump(true, &mut pc),
                JNE_K => jump(r[dst] != i.imm as u32 as u64, &mut pc),
                JSET_K => jump(r[dst] & i.imm as u64 != 0, &mut pc),
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn docker_rules() -> Vec<Rule> {
        let mut v = vec![Rule::parse_v1("a *:* rwm", false).unwrap()];
        for l in super::super::v1::DEFAULT_ALLOWED_DEVICES {
            v.push(Rule::parse_v1(l, true).unwrap());
        }
        v
    }

    #[test]
    fn deny_all_then_defaults_allows_only_the_standard_nodes() {
        let p = assemble(&docker_rules());
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1); // /dev/null
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1); // a pty
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 1), 0); // /dev/mem
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0); // sda
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1); // mknod of anything
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD | ACC_READ, 1, 1), 0);
    }

    #[test]
    fn later_deny_overrides_earlier_allow_and_no_match_allows() {
        let rules = [
            Rule::parse_v1("c 1:3 rwm", true).unwrap(),
            Rule::parse_v1("c 1:3 w", false).unwrap(),
        ];
        let p = assemble(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 1);
    }
}
