//! pullman-bench: measures pullman against its peers (a direct server, nginx, HAProxy,
//! POTHEAD) and against the queueing floor, in one run, interleaved.
//!
//! # Layout
//! - `trace`: seeded Poisson arrival traces and service-time draws, shared by every system.
//! - `sim`: zero-overhead simulation of a trace (central FIFO, round robin, join shortest
//!   queue) and the Erlang C closed forms it is tested against.
//! - `load`: the load generator on hyper: closed loop and open loop (latency from the
//!   intended send time), HTTP/1.1 and HTTP/2, HDR histograms.
//! - `server`: the plain HTTP worker server the push peers forward to (the demo routes, a
//!   concurrency limit); with no limit it is the direct baseline.
//! - `link_hub`: a stand-in hub (on `pullman-link`) that times link round trips against a
//!   real worker process, apart from HTTP.
//! - `procstat`: CPU time and peak RSS of the process in the middle, from `/proc`.
//! - `peers`: starting and stopping each system with generated configs on loopback (among
//!   them pullman's hub on its PTTH port with POTHEAD's worker processes, with workers in C
//!   on pullman's C API, and with the Python package's runners; and granian, gunicorn and
//!   uvicorn serving a Python app directly).
//! - `scenario`: the scenarios (overhead, expensive, hol, bodies, scale, transport, filter,
//!   pothead, capi, python); one file each. With `run --baseline PATH` (a `pullman` binary from an older commit),
//!   overhead and filter also run pullman from that binary beside this build, in the same
//!   rounds, so a refactor shows "no speed lost" in one run.
//! - `report`: results as JSON records, markdown tables and hand-written SVG plots.

#![deny(unsafe_code)]

pub mod error;
pub mod link_hub;
pub mod load;
pub mod peers;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod trace;

pub use error::Error;
