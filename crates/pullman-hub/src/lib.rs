//! The pullman hub as a library.
//!
//! Clients send HTTP/1.1 or HTTP/2 requests to the front; the router picks a pool; the pool
//! queues the request until a worker that dialed in has a free credit; the request travels
//! to that worker over its multiplexed link, and the worker's answer streams back.
//!
//! # Layout
//! The folders are the stages a request passes, in order; the modules beside them are what
//! they share and the planes around them. Imports point down this list, never up (a test,
//! `tests/layers.rs`, checks that the module graph has no cycle).
//! - `front`: the client listeners (hyper; plain and TLS), connection limits, each request's
//!   start and end.
//! - [`routing`]: ordered rules from requests to pools.
//! - `respond` and `filter`: what a pool's mode does with a request: a worker's response,
//!   or a filter's verdict, then the upstream (filter mode).
//! - `dispatch`: each pool's queue and workers, and the one path that hands a request to a
//!   worker and brings its answer back, with the retry rules.
//! - `upstream`: the HTTP/1.1 and h2c client to a filter pool's upstream.
//! - `worker_port`: where workers dial in: listeners, handshake, the hub's side of a link.
//!
//! Shared by the stages: `state` (routes and pools, swapped whole at run time), `request`
//! (a client request on its way), [`body`] (the response body the front serves), `hop`
//! (hop-by-hop header fields), `accept` (accept failures), `tls` (certificates, and a TLS
//! listener's settings), `rate` (the least rate a client must keep), [`error`].
//!
//! The planes: [`hub`] (binding, running, draining), `reload` (changing a running hub, all
//! or nothing), `admin` (the admin API and `/metrics`), [`programs`] (the supervisor),
//! `metrics` (counters, histograms, the Prometheus text format), [`config`].
//!
//! `fuzzing` (hidden from the docs, not part of the API) lets the cargo-fuzz targets in
//! `fuzz/` reach the readers of what peers and files send without a running hub.

#![deny(unsafe_code)]

mod accept;
mod admin;
pub mod body;
pub mod config;
mod dispatch;
pub mod error;
mod filter;
mod front;
#[doc(hidden)]
pub mod fuzzing;
mod hop;
mod http1;
pub mod hub;
mod metrics;
pub mod programs;
mod rate;
mod reload;
mod request;
mod respond;
pub mod routing;
mod state;
mod tls;
mod upstream;
mod worker_port;

pub use config::Config;
pub use error::{ErrorSource, HubError, RequestError, Retry};
pub use hub::{Hub, ReloadHandle};
