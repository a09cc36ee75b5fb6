//! Config text as an operator (or a broken editor, or a wrong file) hands it to the hub:
//! arbitrary UTF-8 to `Config::from_str`, the path of `pullman hub --config`, SIGHUP and
//! `POST /reload`.
//!
//! Checked: no panic; an accepted config written back from its document (what every admin
//! API edit starts from) validates to the same config; a refused one names a line and
//! column inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullman_hub::config::ConfigError;
use pullman_hub::fuzzing::written_back;
use pullman_hub::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_str(text, "fuzz.toml") {
        Ok(config) => {
            let _ = config.warnings();
            let again = written_back(&config)
                .unwrap_or_else(|e| panic!("the written-back document is refused: {e}"));
            assert_same(&config, &again);
        }
        Err(ConfigError::Invalid { location, message }) => {
            assert!(!message.is_empty());
            if let Some((line, column)) = location.position {
                let lines = text.split('\n').count();
                assert!(line >= 1 && line <= lines, "line {line} of {lines}");
                let chars = text
                    .split('\n')
                    .nth(line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(
                    column >= 1 && column <= chars + 1,
                    "column {column} of {chars}"
                );
            }
            let _ = location.to_string();
        }
        Err(e @ ConfigError::Read { .. }) => panic!("reading text is no read error: {e}"),
    }
});

/// The parts of two configs that must agree (a route compiles its patterns, so it compares
/// by its description).
fn assert_same(a: &Config, b: &Config) {
    assert_eq!(a.hub, b.hub);
    assert_eq!(a.pools, b.pools);
    assert_eq!(a.programs, b.programs);
    assert_eq!(a.admin, b.admin);
    assert_eq!(a.metrics, b.metrics);
    assert_eq!(format!("{:?}", a.routes), format!("{:?}", b.routes));
}
