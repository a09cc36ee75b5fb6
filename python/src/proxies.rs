//! `Proxies`: the clients whose word on the scheme is believed.

use std::net::{IpAddr, SocketAddr};

use pyo3::prelude::*;

use crate::errors::invalid;

/// The addresses of the proxies in front of the hub, whose `x-forwarded-proto` says how
/// their client came (gunicorn's and uvicorn's `--forwarded-allow-ips`). From any other
/// client the header is the client's own claim and is ignored: believed, it would let
/// anyone pass a plain request off as `https` to an app that trusts the scheme (secure
/// cookies, redirects to https).
#[pyclass(frozen, module = "pullman._native")]
#[derive(Debug)]
pub struct Proxies {
    /// `*`: every client.
    any: bool,
    ips: Vec<IpAddr>,
}

impl Proxies {
    /// Whether `peer` (the client as the hub saw it, `ip:port`) is one of them.
    pub(crate) fn trusts(&self, peer: &str) -> bool {
        if self.any {
            return true;
        }
        let ip = match peer.parse::<SocketAddr>() {
            Ok(addr) => addr.ip(),
            Err(_) => match peer.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => return false,
            },
        };
        let ip = ip.to_canonical();
        self.ips.contains(&ip)
    }
}

#[pymethods]
impl Proxies {
    /// `spec`: IP addresses separated by commas (`"127.0.0.1,::1"`), `"*"` for every
    /// client, or `""` for none.
    #[new]
    fn new(spec: &str) -> PyResult<Proxies> {
        let mut proxies = Proxies {
            any: false,
            ips: Vec::new(),
        };
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                proxies.any = true;
                continue;
            }
            let ip = item.parse::<IpAddr>().map_err(|_| {
                invalid(format!(
                    "{item:?} is not an IP address (forwarded-allow-ips takes addresses \
                     separated by commas, or *)"
                ))
            })?;
            proxies.ips.push(ip.to_canonical());
        }
        Ok(proxies)
    }

    /// Whether `peer` (`ip:port`, or an address) is one of them.
    #[pyo3(name = "trusts")]
    fn py_trusts(&self, peer: &str) -> bool {
        self.trusts(peer)
    }
}
