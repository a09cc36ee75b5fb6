//! Ordered routing rules: which pool gets a request.
//!
//! A [`Router`] holds the routes of the config in file order; the first route whose every
//! condition holds wins. A route with no condition matches every request. Matching reads the
//! request in place ([`RouteInput`] borrows) and allocates nothing: patterns are normalised
//! (lowercased, regexes compiled) when the config is validated, not per request.
//!
//! # Layout
//! - `router`: [`RouteInput`] and the [`Router`]; the live table it belongs to is
//!   `crate::state`.
//! - `route`: a `[[route]]` table, as written and as validated ([`RouteConfig`]). The
//!   config module uses it to read the file's routes; routing uses nothing of the config.
//! - `conditions`: what a route tests ([`HostMatch`], [`PathMatch`], [`HeaderMatch`]).

mod conditions;
mod route;
mod router;

pub use conditions::{HeaderMatch, HostMatch, PathMatch};
pub use route::RouteConfig;
pub(crate) use route::{RouteError, RouteToml};
pub use router::{RouteInput, Router};
