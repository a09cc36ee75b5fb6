//! Every config file in the repo is parsed: the example must load, each file in
//! `tests/configs/good` must load, and each file in `tests/configs/bad` must be refused with
//! the error its first line announces (`# expect: <part of the message>`).

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue, Method};
use pullman_hub::config::Config;
use pullman_hub::routing::{RouteInput, Router};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.toml` files in `tests/configs/<kind>`, sorted, and at least `min` of them, so that a
/// moved folder cannot make the test pass by finding nothing.
fn config_files(kind: &str, min: usize) -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/configs").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "{}: expected at least {min} configs, found {}",
        dir.display(),
        files.len()
    );
    files
}

fn load(path: &Path) -> Config {
    Config::from_file(path).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn example_config_loads_and_routes_as_its_comments_say() {
    let config = load(&manifest_dir().join("../../examples/hub.toml"));
    assert_eq!(config.pools.len(), 3);
    let router = Router::new(&config.routes);

    let route = |method: Method, host: &str, path: &str, tenant: Option<&'static str>| {
        let mut headers = HeaderMap::new();
        if let Some(tenant) = tenant {
            headers.insert("x-tenant", HeaderValue::from_static(tenant));
        }
        let input = RouteInput {
            host: Some(host),
            path,
            method: &method,
            headers: &headers,
        };
        router.route(&input).map(str::to_owned)
    };
    let png = route(
        Method::GET,
        "img.example.com:443",
        "/img/a/b.png",
        Some("a"),
    );
    assert_eq!(png.as_deref(), Some("render"));
    let other_tenant = route(Method::GET, "img.example.com", "/img/b.png", Some("b"));
    assert_eq!(other_tenant.as_deref(), Some("demo"));
    let upload = route(Method::POST, "example.com", "/upload/x", None);
    assert_eq!(upload.as_deref(), Some("render"));
    let api = route(Method::DELETE, "example.com", "/api/items/1", None);
    assert_eq!(api.as_deref(), Some("waf"));
    let rest = route(Method::GET, "example.com", "/", None);
    assert_eq!(rest.as_deref(), Some("demo"));
}

#[test]
fn good_configs_load() {
    for path in config_files("good", 3) {
        load(&path);
    }
}

#[test]
fn bad_configs_are_refused_with_the_expected_error() {
    // Checks them all before failing, so that one run lists every file that is off.
    let mut failures = Vec::new();
    for path in config_files("bad", 20) {
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(expected) = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
        else {
            failures.push(format!(
                "{}: first line must be `# expect: ...`",
                path.display()
            ));
            continue;
        };
        match Config::from_file(&path) {
            Ok(_) => failures.push(format!(
                "{}: accepted, expected: {expected}",
                path.display()
            )),
            Err(error) => {
                let shown = error.to_string();
                if !shown.starts_with(&path.display().to_string()) || !shown.contains(expected) {
                    failures.push(format!(
                        "{}:\n  expected: {expected}\n  got:      {shown}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
