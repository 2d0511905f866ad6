//! Arbitrary text as a seccomp profile in Docker's format (what `--security-opt seccomp=profile.json`
//! sends), evaluated for a container and compiled as the daemon and the runtime do: never a panic, and a
//! profile that compiles gives a program the kernel would accept (`Program::check`) that means what the
//! profile says: calls of another ABI, and a number no rule names, get the default action; a call that
//! only one unconditional rule names gets that rule's action, whatever its arguments.
//!
//! The first byte picks the container's capabilities (`% 3`: none, Docker's default set, those plus
//! `CAP_SYS_ADMIN` and `CAP_SYS_PTRACE`, which the default profile's `includes` test) and, with bit 7,
//! the architecture the profile is evaluated for (`arm64` instead of `amd64`; the program still filters
//! x86_64, as on an x86_64 host).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use runtime::seccomp::{
    action_value, compile, docker_profile, syscall_number, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT,
};

/// `AUDIT_ARCH_I386`: a call through `int 0x80`.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// Below the x32 bit and above every x86_64 call: no rule can name it.
const UNNAMED_NR: u32 = 0x3fff_0000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut caps: Vec<String> = Vec::new();
    if mode % 3 >= 1 {
        caps.extend(runtime::spec::DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()));
    }
    if mode % 3 == 2 {
        caps.extend(["CAP_SYS_ADMIN".to_string(), "CAP_SYS_PTRACE".to_string()]);
    }
    let arch = if mode & 0x80 != 0 { "arm64" } else { "amd64" };
    let Ok(spec) = docker_profile(text, &caps, arch) else {
        return;
    };
    let Ok(prog) = compile(&spec) else {
        return;
    };
    if let Err(e) = prog.check() {
        panic!("{text:?} compiled to a program the kernel would refuse: {e}");
    }
    let default = action_value(spec.default_action(), spec.default_errno_ret())
        .expect("the default action compiled");
    let verdict = |arch: u32, nr: u32, args: [u64; 6]| {
        prog.evaluate(arch, nr, args)
            .unwrap_or_else(|e| panic!("{text:?}: the program fails to run: {e}"))
    };
    assert_eq!(verdict(AUDIT_ARCH_I386, 0, [0; 6]), default, "i386 call");
    assert_eq!(
        verdict(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, [0; 6]),
        default,
        "x32 call"
    );
    assert_eq!(
        verdict(AUDIT_ARCH_X86_64, UNNAMED_NR, [0; 6]),
        default,
        "unnamed call"
    );

    // For each call number: the rules naming it, and whether every one is unconditional.
    let calls = spec.syscalls().as_deref().unwrap_or(&[]);
    let mut naming: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, call) in calls.iter().enumerate() {
        for nr in call.names().iter().filter_map(|n| syscall_number(n)) {
            let rules = naming.entry(nr).or_default();
            if rules.last() != Some(&i) {
                rules.push(i);
            }
        }
    }
    for (nr, rules) in naming {
        let [only] = rules[..] else { continue };
        let call = &calls[only];
        if call.args().as_ref().is_some_and(|a| !a.is_empty()) {
            continue;
        }
        let want = action_value(call.action(), call.errno_ret()).expect("the rule compiled");
        for args in [[0; 6], [u64::MAX; 6]] {
            assert_eq!(
                verdict(AUDIT_ARCH_X86_64, nr, args),
                want,
                "call {nr}, named only by rule {only}, args {args:?}"
            );
        }
    }
});
