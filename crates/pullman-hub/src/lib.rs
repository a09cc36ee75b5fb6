//! The pullman hub as a library.
//!
//! Clients send HTTP/1.1 or HTTP/2 requests to the front; the router picks a pool; the pool
//! queues the request until a worker that dialed in has a free credit; the request travels
//! to that worker over its multiplexed link, and the worker's answer streams back.
//!
//! # Layout
//! - [`config`]: the TOML config, parsed and validated.
//! - [`router`]: ordered rules from requests to pools.
//! - `front`: the client listener (hyper), limits and idle timeout.
//! - `exchange`: one request's trip: route, queue, worker, answer.
//! - `pool` and `queue`: the per-pool queue, the workers' credits, the dispatcher.
//! - [`programs`]: the supervisor of the worker programs the config names.
//! - `workers`: the worker port: handshake, authentication, link start.
//! - `filter`: filter mode: a filter's verdict on the request (and the upstream's
//!   response), failure modes, the pool's filter counters.
//! - `upstream`: the HTTP/1.1 and h2c client to a filter pool's upstream.
//! - `hop`: the hop-by-hop header fields every passed-on message loses.
//! - `body`: the response body type the front serves.
//! - [`hub`]: binding listeners, running, draining.
//! - `reload`: changing a running hub (admin API edits, reload, SIGHUP), all or nothing.
//! - `admin`: the admin API listener and its endpoints.
//! - `metrics`: per-pool counters and histograms, the Prometheus text format.
//! - [`error`]: request outcomes and start-up errors.

mod admin;
pub mod body;
pub mod config;
pub mod error;
mod exchange;
mod filter;
mod front;
mod hop;
pub mod hub;
mod metrics;
mod pool;
pub mod programs;
mod queue;
mod reload;
pub mod router;
mod upstream;
mod workers;

pub use config::Config;
pub use error::{HubError, RequestError};
pub use hub::{Hub, ReloadHandle};
