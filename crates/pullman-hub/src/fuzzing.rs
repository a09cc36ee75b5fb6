//! What the cargo-fuzz targets in `fuzz/` drive: the hub's readers of bytes that peers,
//! clients and files control, reachable without a running hub. Not part of the API: hidden
//! from the docs, and free to change with the targets.
//!
//! - HTTP/1.1 responses as the hub reads them from a filter pool's upstream or a PTTH worker:
//!   [`decode_response`], then [`BodyDecoder`].
//! - The admin API's PUT bodies: [`admin_put`].
//! - Config documents: [`Config::from_str`], and [`written_back`], the document an admin
//!   API edit starts from.

pub use crate::http1::codec::{
    chunk_size_line, decode_response, BodyDecoder, CodecError, Decoded, Framing, ResponseHead,
    CHUNK_END, LAST_CHUNK, MAX_HEAD,
};

use crate::admin::{put_offline, Kind};
use crate::config::Config;
use crate::reload::config_from_document;

/// The admin API's resources a PUT changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminItem {
    /// `PUT /pools/{name}`
    Pool,
    /// `PUT /routes/{name}`
    Route,
    /// `PUT /programs/{name}`
    Program,
}

/// A refused admin request: the HTTP status the API answers with, and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The status code.
    pub status: u16,
    /// What the API tells the caller.
    pub message: String,
}

/// What the admin API makes of `PUT /{item}s/{name}` with body `json` on a hub running
/// `config`, short of applying it: the new config, and the index of the item in its array.
/// Checks what the API checks but those only a running hub makes (settings that cannot
/// change live, certificates read again).
pub fn admin_put(
    config: &Config,
    item: AdminItem,
    name: &str,
    json: &[u8],
) -> Result<(Config, usize), Refused> {
    let kind = match item {
        AdminItem::Pool => Kind::Pool,
        AdminItem::Route => Kind::Route,
        AdminItem::Program => Kind::Program,
    };
    put_offline(config, kind, name, json)
        .map(|(config, placed)| (config, placed.index))
        .map_err(|e| Refused {
            status: e.status.as_u16(),
            message: e.message,
        })
}

/// `config`'s document written as TOML and validated again, as every admin API edit does
/// before it changes anything: a config read from a file must come back the same.
pub fn written_back(config: &Config) -> Result<Config, String> {
    config_from_document(&config.document.0).map_err(|e| e.message().to_owned())
}
