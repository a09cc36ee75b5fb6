//! The live state every request, worker connection and admin call of a running hub shares:
//! the routes and the pools they point into, swapped whole so that a request sees one
//! consistent version, and the pools still emptying after a change removed them. It sits
//! below everything that uses it; only a reload (`crate::reload`) changes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::config::Config;
use crate::dispatch::Pool;
use crate::error::RequestError;
use crate::routing::{RouteInput, Router};

/// One version of the routes and the pools they point into.
pub(crate) struct RouteTable {
    pub(crate) router: Router,
    pub(crate) pools: PoolTable,
}

/// The pools by name. Looked up once per request, so hashed with FxHash: names come from
/// the config file, not from clients.
pub(crate) type PoolTable = rustc_hash::FxHashMap<String, Arc<Pool>>;

/// The hub's live state.
pub(crate) struct HubState {
    pub(crate) table: ArcSwap<RouteTable>,
    /// Pools removed from the table whose requests are still finishing.
    pub(crate) retiring: Mutex<HashMap<String, Arc<Pool>>>,
    /// `[metrics] enabled`: whether requests are counted and timed.
    pub(crate) recording: AtomicBool,
    /// Requests no route matched (they have no pool to be counted in).
    pub(crate) unrouted: AtomicU64,
}

impl HubState {
    /// The routes and pools of `config`, each pool new and empty.
    pub(crate) fn new(config: &Config) -> HubState {
        let pools: PoolTable = config
            .pools
            .iter()
            .map(|p| (p.name.clone(), Pool::new(p.clone())))
            .collect();
        HubState {
            table: ArcSwap::from_pointee(RouteTable {
                router: Router::new(&config.routes),
                pools,
            }),
            retiring: Mutex::new(HashMap::new()),
            recording: AtomicBool::new(config.metrics.enabled),
            unrouted: AtomicU64::new(0),
        }
    }

    /// Whether requests are counted and timed now.
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// The pool a request goes to. A request no route matches is counted here.
    pub(crate) fn route(&self, parts: &http::request::Parts) -> Result<Arc<Pool>, RequestError> {
        let table = self.table.load();
        let pool = table
            .router
            .route(&RouteInput::from_parts(parts))
            .and_then(|name| table.pools.get(name));
        match pool {
            Some(pool) => Ok(pool.clone()),
            None => {
                if self.is_recording() {
                    self.unrouted.fetch_add(1, Ordering::Relaxed);
                }
                Err(RequestError::NoRoute)
            }
        }
    }

    /// The pool a worker asks for in its HELLO: only pools in the table take new workers.
    pub(crate) fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.table.load().pools.get(name).cloned()
    }

    /// The pools in the table, by name.
    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.table.load().pools.values().cloned().collect();
        pools.sort_by(|a, b| a.name().cmp(b.name()));
        pools
    }

    /// Every pool with workers: those in the table, then those still emptying.
    pub(crate) fn all_pools(&self) -> Vec<Arc<Pool>> {
        let mut pools = self.pools();
        let mut retiring: Vec<Arc<Pool>> = self.retiring.lock().values().cloned().collect();
        retiring.sort_by(|a, b| a.name().cmp(b.name()));
        pools.extend(retiring);
        pools
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> HubState {
        let text = "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n\
                    [[pool]]\nname = \"a\"\ntoken = \"t\"\n[[pool]]\nname = \"b\"\ntoken = \"t\"\n\
                    [[route]]\nhost = \"a.example\"\npool = \"a\"\n\
                    [[route]]\nhost = \"b.example\"\npool = \"b\"\n";
        HubState::new(&Config::from_str(text, "t.toml").unwrap())
    }

    fn pool_for(state: &HubState, request: http::Request<()>) -> Option<String> {
        let (parts, ()) = request.into_parts();
        state.route(&parts).ok().map(|p| p.name().to_owned())
    }

    /// RFC 9112 section 3.2.2: an absolute-form target's authority wins over `Host`.
    #[test]
    fn an_absolute_form_target_routes_by_its_authority_not_by_host() {
        let state = state();
        let absolute = http::Request::get("http://a.example/x")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(pool_for(&state, absolute).as_deref(), Some("a"));
        let origin = http::Request::get("/x")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(pool_for(&state, origin).as_deref(), Some("b"));
    }

    #[test]
    fn a_request_no_route_matches_is_counted() {
        let state = state();
        let request = http::Request::get("/x")
            .header("host", "c.example")
            .body(())
            .unwrap();
        assert_eq!(pool_for(&state, request), None);
        assert_eq!(state.unrouted.load(Ordering::Relaxed), 1);
    }
}
