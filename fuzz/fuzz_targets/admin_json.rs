//! The admin API's PUT bodies as an operator's script (or whoever holds the admin token)
//! sends them: `PUT /pools/{name}`, `/routes/{name}` and `/programs/{name}` with any bytes as
//! the JSON body, on a hub running `examples/hub.toml`.
//!
//! The first byte picks the resource; the bytes up to the next `0x00` are the name in the
//! path (as UTF-8, lossily); the rest is the body.
//!
//! Checked: no panic; a refusal is the client's fault (400), never a server error; an
//! accepted change has the item under its name where the answer says, a pool replaced
//! without a token keeps the old one, and the new config written back (the next edit's
//! start) validates to itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pullman_hub::fuzzing::{admin_put, written_back, AdminItem};
use pullman_hub::Config;

const EXAMPLE: &str = include_str!("../../examples/hub.toml");

fn example() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::from_str(EXAMPLE, "examples/hub.toml").expect("the example"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let item = [AdminItem::Pool, AdminItem::Route, AdminItem::Program][usize::from(which % 3)];
    let (name, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    let before = example();
    let (after, index) = match admin_put(before, item, &name, body) {
        Ok(done) => done,
        Err(refused) => {
            assert_eq!(refused.status, 400, "{refused:?}");
            assert!(!refused.message.is_empty());
            return;
        }
    };
    match item {
        AdminItem::Pool => {
            let pool = &after.pools[index];
            assert_eq!(pool.name, name);
            // A body that may name a token, even escaped, may change it.
            let may_name_token =
                std::str::from_utf8(body).map_or(true, |b| b.contains("token") || b.contains('\\'));
            if let (false, Some(old)) = (may_name_token, before.pool(&name)) {
                assert_eq!(pool.token, old.token, "the token of a replaced pool");
            }
        }
        AdminItem::Route => assert_eq!(after.routes[index].name.as_deref(), Some(&*name)),
        AdminItem::Program => assert_eq!(after.programs[index].name, name),
    }
    let again = written_back(&after).unwrap_or_else(|e| panic!("written back, refused: {e}"));
    assert_eq!(again.pools, after.pools);
    assert_eq!(again.programs, after.programs);
    assert_eq!(format!("{:?}", again.routes), format!("{:?}", after.routes));
});
