//! `include/pullman.h` is what cbindgen makes of this crate today: a header that fell behind
//! the code fails here. `PULLMAN_BLESS=1 cargo test -p pullman-capi --test header` rewrites
//! it.

use std::path::Path;

#[test]
fn the_committed_header_is_a_fresh_generation() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/pullman.h");
    if std::env::var_os("PULLMAN_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/pullman.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/pullman.h differs from what cbindgen generates now; \
         regenerate it with PULLMAN_BLESS=1 cargo test -p pullman-capi --test header"
    );
}
