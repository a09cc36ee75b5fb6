//! End to end: the `pullman` command line itself: how `hub` and `check-config` take their
//! config file, and what `check-config` catches before `hub` would fail.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hub.toml");

/// Runs `pullman ARGS`; its exit success, stdout and stderr.
fn pullman(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_takes_the_file_either_way_and_passes_the_example() {
    for args in [
        vec!["check-config", EXAMPLE],
        vec!["check-config", "--config", EXAMPLE],
    ] {
        let (ok, stdout, stderr) = pullman(&args);
        assert!(ok, "{args:?}: {stderr}");
        assert!(stdout.contains(": ok (3 pools, 4 routes)"), "{stdout}");
    }
    let (ok, _, stderr) = pullman(&["check-config", EXAMPLE, "--config", EXAMPLE]);
    assert!(!ok, "two files: {stderr}");
}

#[test]
fn check_config_refuses_a_unix_listener_in_a_directory_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there");
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"unix://{}/workers.sock\"]\n{}{}",
        missing.display(),
        pool("p", "t", ""),
        route_all("p")
    );
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, config).unwrap();
    let (ok, _, stderr) = pullman(&["check-config", path.to_str().unwrap()]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("directory {} does not exist", missing.display())),
        "{stderr}"
    );
}

#[test]
fn the_hub_takes_its_config_file_as_an_argument_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n{}{}",
        pool("p", "t", ""),
        route_all("p")
    );
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, config).unwrap();
    let mut hub = Command::new(BIN)
        .arg("hub")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(hub.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = hub.kill();
    let _ = hub.wait();
    assert!(first.starts_with("pullman listening front="), "{first:?}");
}

#[test]
fn a_bad_worker_flag_value_is_refused_naming_the_flag() {
    for (flag, value) in [
        ("--gate", "cpu:1.5"),
        ("--gate", "mem:lots"),
        ("--gate", "disk:1"),
        ("--redirect-response", "70000"),
        ("--redirect-min-bytes", "5MB"),
        ("--redirect-expiry", "0s"),
        ("--redirect-expiry", "20"),
    ] {
        let mut args = vec![
            "worker",
            "--hub",
            "tcp://127.0.0.1:1",
            "--pool",
            "p",
            "--token",
            "t",
            flag,
            value,
        ];
        if flag != "--redirect-response" {
            args.extend(["--redirect-response", "0"]);
        }
        let (ok, _, stderr) = pullman(&args);
        assert!(!ok, "{flag} {value} passed");
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn redirect_mode_with_a_unix_hub_needs_a_host() {
    let (ok, _, stderr) = pullman(&[
        "worker",
        "--hub",
        "unix:///tmp/pullman-no-such.sock",
        "--pool",
        "p",
        "--token",
        "t",
        "--redirect-response",
        "0",
    ]);
    assert!(!ok);
    assert!(stderr.contains("redirect host"), "{stderr}");
}
