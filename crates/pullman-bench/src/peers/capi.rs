//! pullman's C API: `examples/c/hello.c` compiled against `libpullman_capi.a` by
//! `bench/run.sh` into `target/release/c-examples/hello`, one process per worker dialling the
//! hub over TCP with the layout's concurrency (`PullmanC`, started from `pullman.rs` where
//! `PullmanTcp` starts `pullman worker --app demo`). hello.c pulls on a fixed
//! [`HELLO_THREADS`] threads and does not name itself in its `/sleep` answers, so the system
//! is ready when every slot answers at once (`Running::wait_ready`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::Proc;
use super::{Env, Layout, Running, System};
use crate::error::Error;

/// Pull threads of hello.c (its `THREADS`): a concurrency above this would leave requests
/// the hub handed over waiting in the worker for a thread.
pub(crate) const HELLO_THREADS: usize = 4;

/// The compiled hello.c, or an error saying how `bench/run.sh` builds it when it is missing.
pub(super) fn hello_bin(system: System, env: &Env) -> Result<PathBuf, Error> {
    let bin = env.c_hello_bin();
    if !bin.is_file() {
        return Err(Error::peer(
            system.label(),
            format!(
                "{} missing: bench/run.sh compiles examples/c/hello.c against \
target/release/libpullman_capi.a with cc",
                bin.display()
            ),
        ));
    }
    Ok(bin)
}

/// hello.c's command line: one worker of `layout.concurrency` on `pool` at `hub`.
pub(super) fn command(
    system: System,
    bin: &Path,
    hub: &str,
    pool: &str,
    token: &str,
    layout: &Layout,
) -> Result<Command, Error> {
    if layout.concurrency > HELLO_THREADS {
        return Err(Error::peer(
            system.label(),
            format!(
                "concurrency {} above hello.c's {HELLO_THREADS} pull threads",
                layout.concurrency
            ),
        ));
    }
    let mut cmd = Command::new(bin);
    cmd.args(["--hub", hub, "--pool", pool, "--token", token])
        .args(["--concurrency", &layout.concurrency.to_string()]);
    Ok(cmd)
}

/// Starts `layout.workers` hello.c processes dialling `hub`; they belong to `running` and
/// stop with it (SIGTERM drains them).
pub(super) fn add_workers(
    running: &mut Running,
    bin: &Path,
    hub: &str,
    pool: &str,
    token: &str,
    layout: &Layout,
) -> Result<(), Error> {
    for i in 0..layout.workers {
        let cmd = command(running.system, bin, hub, pool, token, layout)?;
        let log = running.dir.path().join(format!("worker{i}.log"));
        running.add(Proc::spawn("C worker", cmd, &log)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_c_worker_dials_the_hub_with_the_layouts_concurrency() {
        let cmd = command(
            System::PullmanC,
            Path::new("/build/target/release/c-examples/hello"),
            "tcp://127.0.0.1:40123",
            "bench",
            "bench",
            &Layout::new(2, 2),
        )
        .unwrap();
        assert_eq!(cmd.get_program(), "/build/target/release/c-examples/hello");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--hub",
                "tcp://127.0.0.1:40123",
                "--pool",
                "bench",
                "--token",
                "bench",
                "--concurrency",
                "2"
            ]
        );
    }

    #[test]
    fn a_concurrency_above_hello_cs_threads_is_refused() {
        let bin = Path::new("hello");
        let layout = |c| Layout::new(1, c);
        let cmd = |c| command(System::PullmanC, bin, "tcp://h:1", "p", "t", &layout(c));
        assert!(cmd(HELLO_THREADS).is_ok());
        assert!(cmd(HELLO_THREADS + 1).is_err());
    }

    #[test]
    fn a_missing_c_worker_is_an_error_naming_how_to_build_it() {
        let env = Env {
            bin_dir: PathBuf::from("/nonexistent/target/release"),
            bench_dir: PathBuf::from("/nonexistent/bench"),
            baseline: None,
            hub_threads: None,
        };
        let e = hello_bin(System::PullmanC, &env).unwrap_err().to_string();
        assert!(e.contains("c-examples/hello missing"), "{e}");
        assert!(e.contains("bench/run.sh"), "{e}");
    }
}
