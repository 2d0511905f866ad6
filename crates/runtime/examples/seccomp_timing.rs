//! Times the seccomp steps of a container start with Docker's default profile: evaluating the
//! profile, compiling it to BPF, and loading the compiled program from the cache instead.
//!
//!     cargo run --release -p runtime --example seccomp_timing [RUNS]

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let v = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(v)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let caps: Vec<String> = runtime::spec::DOCKER_DEFAULT_CAPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let profile = runtime::seccomp::docker_default_profile(&caps, "amd64")?;
    let dir = tempfile::tempdir()?;
    let (prog, _) = runtime::seccomp::compile_cached(&profile, dir.path())?;
    let eval = time(runs, || {
        runtime::seccomp::docker_default_profile(&caps, "amd64")
    });
    let compile = time(runs, || runtime::seccomp::compile(&profile));
    let key = time(runs, || runtime::seccomp::cache_key(&profile));
    let cached = time(runs, || {
        runtime::seccomp::compile_cached(&profile, dir.path())
    });
    let install = time(runs.min(50), || install_in_child(&prog));
    println!(
        "Docker default profile, {} BPF instructions, median of {runs}:",
        prog.filter.len()
    );
    println!("  evaluate profile JSON (engine side, once per config): {eval:8.1} us");
    println!("  compile to BPF (cold start):                          {compile:8.1} us");
    println!("  cache key (sha256 of the section):                    {key:8.1} us");
    println!("  compile_cached, cache hit (warm start):               {cached:8.1} us");
    println!("  fork + install + exit of a child (kernel side):      {install:8.1} us");
    let nothing = time(runs.min(50), || {
        install_in_child(&runtime::seccomp::Program {
            filter: Vec::new(),
            flags: 0,
        })
    });
    println!("  fork + exit of a child, no filter (baseline):         {nothing:8.1} us");
    Ok(())
}

/// Forks a child that sets no_new_privs, installs `prog` (unless empty) and exits; waits.
fn install_in_child(prog: &runtime::seccomp::Program) -> i32 {
    // SAFETY: the example is single-threaded; the child makes syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: prctl with integer arguments, then _exit.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        let ok = prog.filter.is_empty() || prog.install().is_ok();
        // SAFETY: _exit ends the child.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: valid out-pointer; `pid` is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}
