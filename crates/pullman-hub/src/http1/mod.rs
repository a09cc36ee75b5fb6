//! HTTP/1.1 on connections the hub holds, as the client side: a filter pool's upstream
//! (`upstream::h1`) and a PTTH worker's connection (`dispatch::ptth`) speak it alike.
//!
//! # Layout
//! - `codec`: request heads, response heads and body framings, without I/O.
//! - `conn`: one exchange on a connection (request out, response back, body streamed), and
//!   the [`Home`](conn::Home) a reusable connection goes back to.

pub(crate) mod codec;
pub(crate) mod conn;
