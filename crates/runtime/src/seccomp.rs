//! seccomp: the OCI `linux.seccomp` section compiled to a classic BPF program in pure Rust
//! (`seccompiler`), cached on disk by content hash, and installed right before `execve`.
//!
//! Architectures: the filter checks the native architecture (x86_64) only. A syscall made
//! through another ABI (i386 `int 0x80`, or x32, whose numbers carry bit 30) gets the profile's
//! default action. runc with libseccomp instead filters those ABIs too when the spec lists them
//! as `architectures`; a 32-bit binary in a container therefore runs under runc and fails under
//! Berth. This is deliberate for now: one arch keeps the program short and the rules simple.
//!
//! Unconditional rules (most of Docker's profile) are runs of one JEQ per syscall sharing a
//! RET. Rules with argument conditions are compiled as one `seccompiler` filter per action, and
//! the filters are chained: where a filter would return "no match", it jumps to the next filter
//! instead, and the last one falls through to the default action. Filters are ordered by the
//! first appearance of their action in the spec, so for a syscall named under two actions
//! the earlier rule wins.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::syscall_table;

/// `AUDIT_ARCH_X86_64`: the `arch` of a native call in `struct seccomp_data`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// The bit x32 system call numbers carry.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;
/// The kernel's `BPF_MAXINSNS`.
const BPF_MAXINSNS: usize = 4096;
/// `sizeof(struct seccomp_data)`: nr, arch, instruction pointer, six arguments.
const SECCOMP_DATA_LEN: u32 = 64;
/// A return value no real rule uses (SECCOMP_RET_TRACE with data 0xbe7): marks "no match" in a
/// per-action sub-filter, to be rewritten into a jump to the next sub-filter.
const NO_MATCH: u32 = 0x7ff0_0be7;
/// Bump when the program layout changes, so old cache entries are not reused.
const CACHE_FORMAT: &[u8] = b"berth-seccomp-v2\n";
/// JEQs in a row before their shared RET: a conditional jump reaches at most 255 ahead.
const MAX_JEQ_RUN: usize = 200;

/// One classic BPF instruction (`struct sock_filter`, same layout as the kernel's).
pub type Insn = seccompiler::sock_filter;

/// A compiled seccomp program, ready to install with `SECCOMP_SET_MODE_FILTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The BPF instructions.
    pub filter: Vec<Insn>,
    /// `SECCOMP_FILTER_FLAG_*` bits from the spec's `flags`.
    pub flags: u32,
}

impl Program {
    /// Installs the program on the calling thread. Needs `no_new_privs` or `CAP_SYS_ADMIN`.
    /// Async-signal-safe: makes one system call and does not allocate.
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `Insn` is `#[repr(C)]` with the kernel's `sock_filter` layout; `prog` points at
        // `self.filter`, which outlives the call, and the kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Checks the program as the kernel does when it is installed (`bpf_check_classic` and
    /// `seccomp_check_filter`), for the instructions [`compile`] emits: 1 to 4096 instructions,
    /// loads only of aligned words inside `struct seccomp_data`, jumps that land inside the
    /// program, a `RET` last. It also refuses what the kernel would take but Berth never means:
    /// an opcode [`compile`] does not emit, and a leftover "no match" marker. For tests and
    /// fuzzing: a program that fails here would fail `install` with `EINVAL`, or misbehave.
    pub fn check(&self) -> Result<()> {
        let bad = |pc: usize, why: String| Err(Error::Seccomp(format!("instruction {pc}: {why}")));
        let len = self.filter.len();
        if len == 0 || len > BPF_MAXINSNS {
            return Err(Error::Seccomp(format!(
                "program has {len} instructions (1 to {BPF_MAXINSNS} allowed)"
            )));
        }
        for (pc, ins) in self.filter.iter().enumerate() {
            // Classic BPF jumps only forward, relative to the next instruction.
            let lands = |off: u32| (pc as u64 + 1 + u64::from(off)) < len as u64;
            match ins.code {
                BPF_LD_W_ABS if ins.k >= SECCOMP_DATA_LEN || ins.k % 4 != 0 => {
                    return bad(pc, format!("load at offset {} outside seccomp_data", ins.k));
                }
                BPF_LD_W_ABS | BPF_ALU_AND_K => {}
                BPF_JMP_JA if !lands(ins.k) => {
                    return bad(pc, format!("jump by {} leaves the program", ins.k));
                }
                BPF_JMP_JA => {}
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JGT_K | BPF_JMP_JSET_K => {
                    if !lands(ins.jt.into()) || !lands(ins.jf.into()) {
                        return bad(
                            pc,
                            format!("jump by {}/{} leaves the program", ins.jt, ins.jf),
                        );
                    }
                }
                BPF_RET_K if ins.k == NO_MATCH => {
                    return bad(pc, "a sub-filter's no-match marker was left in".into());
                }
                BPF_RET_K => {}
                code => return bad(pc, format!("opcode {code:#x} is not one Berth emits")),
            }
        }
        match self.filter.last() {
            Some(ins) if ins.code == BPF_RET_K => Ok(()),
            _ => Err(Error::Seccomp("program does not end in RET".into())),
        }
    }

    /// Runs the program on one system call as the kernel would (`arch` is `AUDIT_ARCH_*`), returning
    /// the action value. Only the instructions [`Program::check`] accepts are known; for tests and
    /// fuzzing, to say what a compiled profile does to a call.
    pub fn evaluate(&self, arch: u32, nr: u32, args: [u64; 6]) -> Result<u32> {
        let mut data = [0u8; SECCOMP_DATA_LEN as usize];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let Some(ins) = self.filter.get(pc) else {
                return Err(Error::Seccomp(format!("ran off the program at {pc}")));
            };
            pc += 1;
            match ins.code {
                BPF_LD_W_ABS => {
                    let o = ins.k as usize;
                    let word = data
                        .get(o..o + 4)
                        .and_then(|w| <[u8; 4]>::try_from(w).ok())
                        .ok_or_else(|| Error::Seccomp(format!("load at offset {o}")))?;
                    acc = u32::from_ne_bytes(word);
                }
                BPF_RET_K => return Ok(ins.k),
                BPF_JMP_JA => pc += ins.k as usize,
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JGT_K | BPF_JMP_JSET_K => {
                    let taken = match ins.code {
                        BPF_JMP_JEQ_K => acc == ins.k,
                        BPF_JMP_JGE_K => acc >= ins.k,
                        BPF_JMP_JGT_K => acc > ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                BPF_ALU_AND_K => acc &= ins.k,
                code => return Err(Error::Seccomp(format!("opcode {code:#x} at {}", pc - 1))),
            }
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CACHE_FORMAT.len() + 4 + self.filter.len() * 8);
        out.extend_from_slice(CACHE_FORMAT);
        out.extend_from_slice(&self.flags.to_le_bytes());
        for i in &self.filter {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Program> {
        let rest = bytes.strip_prefix(CACHE_FORMAT)?;
        let flags = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        let body = rest.get(4..)?;
        if body.is_empty() || body.len() % 8 != 0 || body.len() / 8 > 4096 {
            return None;
        }
        let filter = body
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Program { filter, flags })
    }
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// Looks up an x86_64 system call number by name.
pub fn syscall_number(name: &str) -> Option<u32> {
    syscall_table::X86_64
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| syscall_table::X86_64[i].1)
}

/// The kernel's return value for an OCI action (`errno` for ERRNO and TRACE), as [`compile`] writes
/// it into the program's `RET`s.
pub fn action_value(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32> {
    let data = |default: u32| errno.unwrap_or(default) & 0xffff;
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 0,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000 | data(libc::EPERM as u32),
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | data(libc::EPERM as u32),
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(
                "SCMP_ACT_NOTIFY is not supported (no seccomp agent)".into(),
            ))
        }
    })
}

fn seccompiler_action(value: u32) -> SeccompAction {
    match value & 0xffff_0000 {
        0x8000_0000 => SeccompAction::KillProcess,
        0x0003_0000 => SeccompAction::Trap,
        0x0005_0000 => SeccompAction::Errno(value & 0xffff),
        0x7ff0_0000 => SeccompAction::Trace(value & 0xffff),
        0x7ffc_0000 => SeccompAction::Log,
        0x7fff_0000 => SeccompAction::Allow,
        _ => SeccompAction::KillThread,
    }
}

fn condition(arg: &LinuxSeccompArg) -> Result<SeccompCondition> {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => SeccompCmpOp::Ne,
        LinuxSeccompOperator::ScmpCmpLt => SeccompCmpOp::Lt,
        LinuxSeccompOperator::ScmpCmpLe => SeccompCmpOp::Le,
        LinuxSeccompOperator::ScmpCmpEq => SeccompCmpOp::Eq,
        LinuxSeccompOperator::ScmpCmpGe => SeccompCmpOp::Ge,
        LinuxSeccompOperator::ScmpCmpGt => SeccompCmpOp::Gt,
        // libseccomp: `value` is the mask, `valueTwo` the value the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => SeccompCmpOp::MaskedEq(arg.value()),
    };
    let value = match arg.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    let index = u8::try_from(arg.index())
        .map_err(|_| Error::Seccomp(format!("argument index {} out of range", arg.index())))?;
    // Arguments are compared as 64-bit values, as libseccomp does.
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| Error::Seccomp(format!("argument {}: {e}", arg.index())))
}

/// The rules of one syscall entry: all its conditions ANDed, except that several conditions on
/// the same argument are ORed (one rule each), which is how runc hands them to libseccomp.
fn rules_for(call: &LinuxSyscall) -> Result<Vec<SeccompRule>> {
    let args = call.args().as_deref().unwrap_or(&[]);
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let same_index = args.len() > 1 && args.iter().all(|a| a.index() == args[0].index());
    let mk = |conds: Vec<SeccompCondition>| {
        SeccompRule::new(conds).map_err(|e| Error::Seccomp(format!("rule: {e}")))
    };
    if same_index {
        args.iter().map(|a| mk(vec![condition(a)?])).collect()
    } else {
        Ok(vec![mk(args
            .iter()
            .map(condition)
            .collect::<Result<_>>()?)?])
    }
}

/// One sub-filter: the syscalls that get one action. `None` means "unconditionally".
type Group = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Compiles an OCI seccomp section into a BPF program for x86_64 (see the module docs).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Program> {
    let default = action_value(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut groups: Vec<(u32, Group)> = Vec::new();
    for call in seccomp.syscalls().as_deref().unwrap_or(&[]) {
        let action = action_value(call.action(), call.errno_ret())?;
        if action == default {
            continue; // libseccomp refuses such rules; runc skips them.
        }
        if action == NO_MATCH {
            return Err(Error::Seccomp(
                "SCMP_ACT_TRACE with errnoRet 3047 is reserved".into(),
            ));
        }
        let rules = rules_for(call)?;
        let gi = match groups.iter().position(|(a, _)| *a == action) {
            Some(i) => i,
            None => {
                groups.push((action, Group::new()));
                groups.len() - 1
            }
        };
        let group = &mut groups[gi].1;
        for name in call.names() {
            // Unknown names (other arches, newer kernels) are skipped, as runc does.
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            let entry = group
                .entry(i64::from(nr))
                .or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), rules.is_empty()) {
                (Some(list), false) => list.extend(rules.iter().cloned()),
                _ => *entry = None,
            }
        }
    }

    let mut prog = vec![
        stmt(BPF_LD_W_ABS, 4), // seccomp_data.arch
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, default),
        stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, default),
    ];
    for (action, group) in groups {
        let (always, conditional): (Vec<_>, Vec<_>) =
            group.into_iter().partition(|(_, r)| r.is_none());
        // Unconditional syscalls: one JEQ each, jumping to a shared RET (seccompiler spends
        // four instructions per syscall; the kernel converts and JITs every instruction at
        // install time, so a short program starts faster).
        for chunk in always.chunks(MAX_JEQ_RUN) {
            prog.push(stmt(BPF_LD_W_ABS, 0)); // seccomp_data.nr
            let k = chunk.len();
            for (i, (nr, _)) in chunk.iter().enumerate() {
                prog.push(jump(BPF_JMP_JEQ_K, *nr as u32, (k - i) as u8, 0));
            }
            prog.push(stmt(BPF_JMP_JA, 1));
            prog.push(stmt(BPF_RET_K, action));
        }
        let rules: BTreeMap<i64, Vec<SeccompRule>> = conditional
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        if rules.is_empty() {
            continue;
        }
        let filter = SeccompFilter::new(
            rules,
            seccompiler_action(NO_MATCH),
            seccompiler_action(action),
            TargetArch::x86_64,
        )
        .map_err(|e| Error::Seccomp(e.to_string()))?;
        let bpf: seccompiler::BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| Error::Seccomp(e.to_string()))?;
        // Drop seccompiler's own arch check (3 instructions); ours above covers every group.
        let body = bpf.get(3..).unwrap_or(&[]);
        let len = body.len();
        for (i, ins) in body.iter().enumerate() {
            if ins.code == BPF_RET_K && ins.k == NO_MATCH {
                prog.push(stmt(BPF_JMP_JA, (len - i - 1) as u32));
            } else {
                prog.push(jump(ins.code, ins.k, ins.jt, ins.jf));
            }
        }
    }
    prog.push(stmt(BPF_RET_K, default));
    if prog.len() > BPF_MAXINSNS {
        return Err(Error::Seccomp(format!(
            "program too long: {} instructions",
            prog.len()
        )));
    }
    let mut flags = 0;
    for f in seccomp.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
        } as u32;
    }
    Ok(Program {
        filter: prog,
        flags,
    })
}

/// The directory for cached programs: `$BERTH_SECCOMP_CACHE`, else `/run/berth/seccomp`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("BERTH_SECCOMP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/berth/seccomp"))
}

/// The cache key of a seccomp section: sha256 of the format version and its JSON form.
pub fn cache_key(seccomp: &LinuxSeccomp) -> Result<String> {
    let json = serde_json::to_vec(seccomp).map_err(|e| Error::Seccomp(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(CACHE_FORMAT);
    h.update(&json);
    Ok(hex::encode(h.finalize()))
}

/// Whether [`compile_cached`] found the program in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from `<dir>/<sha256>.bpf`; nothing was compiled.
    Hit,
    /// Compiled, and written to the cache.
    Compiled,
    /// Compiled; the cache could not be written (the reason is logged).
    CompiledUncached,
}

/// The program for a spec's `linux.seccomp`, if it has one, through the cache in `cache_dir` (default
/// [`default_cache_dir`]).
pub fn program_for(
    spec: &oci_spec::runtime::Spec,
    cache_dir: Option<&Path>,
) -> Result<Option<Program>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let dir = cache_dir.map_or_else(default_cache_dir, Path::to_path_buf);
            Ok(Some(compile_cached(s, &dir)?.0))
        }
        None => Ok(None),
    }
}

/// Returns the program for `seccomp`, from `dir/<sha256>.bpf` if present, else compiles it and
/// stores it there (atomically, via a temp file and rename). A corrupt entry is recompiled.
pub fn compile_cached(seccomp: &LinuxSeccomp, dir: &Path) -> Result<(Program, CacheOutcome)> {
    let key = cache_key(seccomp)?;
    let path = dir.join(format!("{key}.bpf"));
    if let Ok(bytes) = std::fs::read(&path) {
        if let Some(p) = Program::from_bytes(&bytes) {
            return Ok((p, CacheOutcome::Hit));
        }
    }
    let prog = compile(seccomp)?;
    let stored = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(&prog.to_bytes())?;
        tmp.1.sync_data().ok();
        std::fs::rename(&tmp.0, &path).inspect_err(|_| {
            if let Err(e) = std::fs::remove_file(&tmp.0) {
                tracing::warn!(path = %tmp.0.display(), error = %e, "removing a seccomp cache temporary");
            }
        })
    })();
    match stored {
        Ok(()) => Ok((prog, CacheOutcome::Compiled)),
        Err(e) => {
            eprintln!("berth runtime: seccomp cache {}: {e}", path.display());
            Ok((prog, CacheOutcome::CompiledUncached))
        }
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".tmp-{}-{}", std::process::id(), nanos()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, f))
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Docker's default profile, as shipped by moby (Apache-2.0), embedded as data.
const DOCKER_DEFAULT_JSON: &str = include_str!("seccomp-default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<DockerArchMap>,
    /// The older form of `archMap`: architectures without their sub-architectures.
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
    #[serde(default)]
    listener_path: String,
    #[serde(default)]
    flags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    names: Vec<String>,
    /// The older form of `names`: one call.
    #[serde(default)]
    name: String,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: DockerFilter,
    #[serde(default)]
    excludes: DockerFilter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The running kernel's (major, minor) version, from `uname`.
pub fn kernel_version() -> (u32, u32) {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Evaluates Docker's default seccomp profile into an OCI `linux.seccomp` section the way the
/// Docker engine does: keeps the rules whose `includes` (all listed caps in `caps`, arch in the
/// list, kernel at least `minKernel`) hold and whose `excludes` (any listed cap, arch) do not.
/// `caps` are the container's bounding capabilities (`CAP_SYS_ADMIN`...); `arch` is Go's
/// name for the architecture (`amd64`, `arm64`), as in the profile.
pub fn docker_default_profile(caps: &[String], arch: &str) -> Result<LinuxSeccomp> {
    evaluate_docker_profile(DOCKER_DEFAULT_JSON, caps, arch, kernel_version())
}

/// Evaluates a profile in Docker's format (what `--security-opt seccomp=profile.json` sends) as
/// [`docker_default_profile`] does the default one.
pub fn docker_profile(json: &str, caps: &[String], arch: &str) -> Result<LinuxSeccomp> {
    evaluate_docker_profile(json, caps, arch, kernel_version())
}

fn go_arch_to_seccomp(arch: &str) -> Option<oci_spec::runtime::Arch> {
    use oci_spec::runtime::Arch;
    Some(match arch {
        "amd64" => Arch::ScmpArchX86_64,
        "386" => Arch::ScmpArchX86,
        "arm64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390x" => Arch::ScmpArchS390x,
        "ppc64le" => Arch::ScmpArchPpc64le,
        _ => return None,
    })
}

fn evaluate_docker_profile(
    json: &str,
    caps: &[String],
    arch: &str,
    kernel: (u32, u32),
) -> Result<LinuxSeccomp> {
    let profile: DockerProfile = serde_json::from_str(json)
        .map_err(|e| Error::Seccomp(format!("decoding seccomp profile failed: {e}")))?;
    if !profile.arch_map.is_empty() && !profile.architectures.is_empty() {
        return Err(Error::Seccomp(
            "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }
    if !profile.listener_path.is_empty() {
        return Err(Error::Seccomp(
            "seccomp notification listeners (listenerPath) are not supported".into(),
        ));
    }
    if !profile.flags.is_empty() {
        return Err(Error::Seccomp(format!(
            "seccomp filter flags {:?} are not supported",
            profile.flags
        )));
    }
    let native = go_arch_to_seccomp(arch);
    let mut arches = Vec::new();
    // Names are kept as strings while reading: the profile lists arches (loongarch64...)
    // that oci-spec has no variant for; only the native one's family is kept.
    let to_arch = |s: &String| {
        serde_json::from_value::<oci_spec::runtime::Arch>(serde_json::Value::String(s.clone())).ok()
    };
    for m in &profile.arch_map {
        if native.is_some() && to_arch(&m.architecture) == native {
            arches.extend(native);
            arches.extend(m.sub_architectures.iter().flatten().filter_map(to_arch));
        }
    }
    if profile
        .architectures
        .iter()
        .any(|a| native.is_some() && to_arch(a) == native)
    {
        arches.extend(native);
    }
    let has_cap = |c: &String| caps.iter().any(|x| x == c);
    let mut out = Vec::new();
    for call in &profile.syscalls {
        let inc = &call.includes;
        let exc = &call.excludes;
        if exc
            .arches
            .as_ref()
            .is_some_and(|a| a.iter().any(|x| x == arch))
            || exc.caps.as_ref().is_some_and(|c| c.iter().any(has_cap))
        {
            continue;
        }
        if inc
            .arches
            .as_ref()
            .is_some_and(|a| !a.is_empty() && !a.iter().any(|x| x == arch))
            || inc.caps.as_ref().is_some_and(|c| !c.iter().all(has_cap))
        {
            continue;
        }
        if let Some(min) = inc.min_kernel.as_deref().and_then(parse_version) {
            if kernel < min {
                continue;
            }
        }
        let names = match (call.name.is_empty(), call.names.is_empty()) {
            (true, _) => call.names.clone(),
            (false, true) => vec![call.name.clone()],
            (false, false) => {
                return Err(Error::Seccomp(
                    "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into(),
                ))
            }
        };
        let mut b = LinuxSyscallBuilder::default()
            .names(names)
            .action(call.action);
        if let Some(e) = call.errno_ret {
            b = b.errno_ret(e);
        }
        if let Some(a) = &call.args {
            b = b.args(a.clone());
        }
        out.push(b.build().map_err(|e| Error::Seccomp(e.to_string()))?);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .architectures(arches)
        .syscalls(out);
    if let Some(e) = profile.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    b.build().map_err(|e| Error::Seccomp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|c| c.action() == LinuxSeccompAction::ScmpActAllow)
            .flat_map(|c| c.names().clone())
            .collect()
    }

    #[test]
    fn custom_profiles_take_dockers_older_forms_and_refuse_what_they_cannot_mean() {
        let p = docker_profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64"],
                "syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW"}]}"#,
            &[],
            "amd64",
        )
        .unwrap();
        assert_eq!(names(&p), vec!["read".to_string()]);
        assert_eq!(
            p.architectures().clone().unwrap_or_default(),
            vec![oci_spec::runtime::Arch::ScmpArchX86_64]
        );
        for (bad, says) in [
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                    "archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
                "use either 'architectures' or 'archMap'",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#,
                "use either 'name' or 'names'",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}"#,
                "listenerPath",
            ),
            (r#"{"syscalls":[]}"#, "decoding seccomp profile failed"),
        ] {
            let e = docker_profile(bad, &[], "amd64").unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn syscall_table_is_sorted_and_knows_common_calls() {
        assert!(syscall_table::X86_64.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("clone3"), Some(435));
        assert_eq!(syscall_number("no_such_call"), None);
    }

    #[test]
    fn docker_profile_includes_cap_gated_calls_only_with_the_cap() {
        let without = docker_default_profile(&caps(&["CAP_CHOWN"]), "amd64").unwrap();
        let with = docker_default_profile(&caps(&["CAP_SYS_ADMIN"]), "amd64").unwrap();
        assert!(!names(&without).iter().any(|n| n == "mount"));
        assert!(names(&with).iter().any(|n| n == "mount"));
        // clone3 is ENOSYS without CAP_SYS_ADMIN so that libc falls back to clone.
        let clone3 = without
            .syscalls()
            .iter()
            .flatten()
            .find(|c| c.names().iter().any(|n| n == "clone3"))
            .unwrap();
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        assert!(names(&with).iter().any(|n| n == "clone3"));
    }

    #[test]
    fn docker_profile_filters_by_arch_and_kernel() {
        let amd = evaluate_docker_profile(DOCKER_DEFAULT_JSON, &[], "amd64", (6, 1)).unwrap();
        assert!(names(&amd).iter().any(|n| n == "arch_prctl"));
        assert!(!names(&amd).iter().any(|n| n == "riscv_flush_icache"));
        use oci_spec::runtime::Arch;
        assert_eq!(
            amd.architectures().clone().unwrap(),
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        let old = evaluate_docker_profile(DOCKER_DEFAULT_JSON, &[], "amd64", (4, 4)).unwrap();
        assert!(!names(&old).iter().any(|n| n == "ptrace"));
        assert!(names(&amd).iter().any(|n| n == "ptrace"));
    }

    fn run(p: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        p.check().unwrap();
        p.evaluate(arch, nr, args).unwrap()
    }

    #[test]
    fn compiled_docker_profile_allows_denies_and_checks_args() {
        let s = docker_default_profile(&caps(&["CAP_CHOWN"]), "amd64").unwrap();
        let p = compile(&s).unwrap();
        let nr = |n| syscall_number(n).unwrap();
        let a = AUDIT_ARCH_X86_64;
        assert_eq!(run(&p, a, nr("read"), [0; 6]), 0x7fff_0000);
        assert_eq!(run(&p, a, nr("mount"), [0; 6]), 0x0005_0001); // EPERM
        assert_eq!(
            run(&p, a, nr("clone3"), [0; 6]),
            0x0005_0000 | libc::ENOSYS as u32
        );
        // personality(0) allowed, personality(5) denied.
        assert_eq!(run(&p, a, nr("personality"), [0; 6]), 0x7fff_0000);
        assert_eq!(
            run(&p, a, nr("personality"), [5, 0, 0, 0, 0, 0]),
            0x0005_0001
        );
        // clone without namespace flags allowed; with CLONE_NEWNS denied.
        assert_eq!(run(&p, a, nr("clone"), [0x11, 0, 0, 0, 0, 0]), 0x7fff_0000);
        let newns = libc::CLONE_NEWNS as u64;
        assert_eq!(run(&p, a, nr("clone"), [newns, 0, 0, 0, 0, 0]), 0x0005_0001);
        // socket(AF_VSOCK=40) denied, AF_INET allowed.
        assert_eq!(run(&p, a, nr("socket"), [2, 0, 0, 0, 0, 0]), 0x7fff_0000);
        assert_eq!(run(&p, a, nr("socket"), [40, 0, 0, 0, 0, 0]), 0x0005_0001);
        // Other ABIs get the default action.
        assert_eq!(run(&p, 0x4000_0003, 3, [0; 6]), 0x0005_0001);
        assert_eq!(run(&p, a, X32_SYSCALL_BIT, [0; 6]), 0x0005_0001);
    }

    #[test]
    fn cache_stores_then_hits_and_survives_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = docker_default_profile(&[], "amd64").unwrap();
        let (p1, o1) = compile_cached(&s, dir.path()).unwrap();
        let (p2, o2) = compile_cached(&s, dir.path()).unwrap();
        assert_eq!((o1, o2), (CacheOutcome::Compiled, CacheOutcome::Hit));
        assert_eq!(p1, p2);
        let file = dir.path().join(format!("{}.bpf", cache_key(&s).unwrap()));
        std::fs::write(&file, b"junk").unwrap();
        let (p3, o3) = compile_cached(&s, dir.path()).unwrap();
        assert_eq!(o3, CacheOutcome::Compiled);
        assert_eq!(p3, p1);
    }
}
