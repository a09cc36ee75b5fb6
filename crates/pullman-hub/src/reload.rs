//! Changing a running hub. The admin API's edits, `POST /reload` and SIGHUP all build a new
//! [`Config`], validated whole exactly as a file is, and hand it to [`Reconfig::apply`],
//! the one place a change takes effect.
//!
//! A change is all or nothing: what cannot change live is checked first and refuses the
//! whole change; then pools are updated in place and the routing table is swapped in one
//! store, so a request sees either the old routes or the new ones. Nothing queued or in
//! flight is lost:
//! - a pool that stays keeps its `Pool` (queue, workers, counters); only its settings change;
//! - a pool that goes leaves the routing table at once, but its queued and in-flight
//!   requests still finish on its workers; once it is empty its workers are told DRAIN and
//!   their links are closed (the SDK then finds the pool gone and stops);
//! - a pool added back while it is still emptying gets its old `Pool` back.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use pullman_proto::CloseCode;

use crate::config::{Config, ConfigError};
use crate::dispatch::Pool;
use crate::programs::Supervisor;
use crate::routing::Router;
use crate::state::{HubState, PoolTable, RouteTable};
use crate::tls::HubTls;

/// How often a removed pool is checked for being empty. Short enough that its workers are
/// released soon after their last answer; the check is one lock of that pool.
const RETIRE_CHECK: Duration = Duration::from_millis(100);

/// Why a change was refused. The variants are the admin API's status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChangeError {
    /// The new config does not validate (400).
    Invalid(String),
    /// What the change names does not exist (404).
    NotFound(String),
    /// The change clashes with the hub's state: a pool a route still names, a setting
    /// that cannot change while the hub runs (409).
    Conflict(String),
    /// The config file could not be read (500).
    Unavailable(String),
}

impl ChangeError {
    pub(crate) fn message(&self) -> &str {
        match self {
            ChangeError::Invalid(m)
            | ChangeError::NotFound(m)
            | ChangeError::Conflict(m)
            | ChangeError::Unavailable(m) => m,
        }
    }
}

/// The config the hub runs now, and the one way to change it.
pub(crate) struct Reconfig {
    state: Arc<HubState>,
    /// Held for the whole of a change, so changes happen one at a time.
    current: Mutex<Config>,
    /// The file `reload` reads; unset for a hub built from a config in memory.
    file: OnceLock<PathBuf>,
    /// Runs the config's programs; told of every change.
    supervisor: Arc<Supervisor>,
    /// The TLS listeners' settings, whose certificates every change reads again.
    tls: HubTls,
}

impl Reconfig {
    pub(crate) fn new(
        state: Arc<HubState>,
        config: Config,
        supervisor: Arc<Supervisor>,
        tls: HubTls,
    ) -> Reconfig {
        Reconfig {
            state,
            current: Mutex::new(config),
            file: OnceLock::new(),
            supervisor,
            tls,
        }
    }

    /// Starts the programs of the config the hub started with.
    pub(crate) fn start_programs(&self) {
        self.supervisor.apply(&self.current.lock());
    }

    pub(crate) fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    pub(crate) fn set_file(&self, path: PathBuf) {
        let _ = self.file.set(path);
    }

    pub(crate) fn file(&self) -> Option<&PathBuf> {
        self.file.get()
    }

    /// Reads the config the hub runs now.
    pub(crate) fn with_current<R>(&self, read: impl FnOnce(&Config) -> R) -> R {
        read(&self.current.lock())
    }

    /// Re-reads the config file and applies it. The admin API's edits since the last
    /// reload are replaced by what the file says.
    pub(crate) fn reload(&self) -> Result<(), ChangeError> {
        let path = self.file.get().ok_or_else(|| {
            ChangeError::Conflict("the hub was not started from a config file".into())
        })?;
        let config = Config::from_file(path).map_err(|e| match e {
            ConfigError::Read { .. } => ChangeError::Unavailable(e.to_string()),
            ConfigError::Invalid { .. } => ChangeError::Invalid(e.to_string()),
        })?;
        let mut current = self.current.lock();
        self.apply(&mut current, config)
    }

    /// Edits the config document (TOML values, as in the file), validates the result as a
    /// whole and applies it. What the admin API's PUT and DELETE do.
    pub(crate) fn edit(
        &self,
        edit: impl FnOnce(&mut toml::Table) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let mut current = self.current.lock();
        let mut document = current.document.0.clone();
        edit(&mut document)?;
        let config = config_from_document(&document)?;
        self.apply(&mut current, config)
    }

    /// Makes `new` the hub's config, or refuses it and changes nothing. Extend here for more
    /// live state: check first, then apply.
    fn apply(&self, current: &mut Config, new: Config) -> Result<(), ChangeError> {
        fixed_settings_unchanged(current, &new)?;
        // Read before anything changes, so that a certificate that cannot be read refuses
        // the whole change.
        let certificates = self
            .tls
            .renew(&new)
            .map_err(|why| ChangeError::Invalid(format!("TLS certificates: {why}")))?;
        crate::upstream::check_tls(&new.pools).map_err(ChangeError::Invalid)?;
        for warning in new.warnings() {
            tracing::warn!("{warning}");
        }

        let old = self.state.table.load();
        let mut retiring = self.state.retiring.lock();
        let mut pools = PoolTable::default();
        for config in &new.pools {
            let pool = match old.pools.get(&config.name) {
                Some(pool) => pool.clone(),
                None => match retiring.remove(&config.name) {
                    Some(pool) => {
                        tracing::info!(pool = %config.name, "pool added back while emptying; it keeps its queue and workers");
                        pool
                    }
                    None => {
                        tracing::info!(pool = %config.name, "pool added");
                        Pool::new(config.clone())
                    }
                },
            };
            pool.update(config.clone());
            pools.insert(config.name.clone(), pool);
        }
        for (name, pool) in &old.pools {
            if !pools.contains_key(name) {
                tracing::info!(pool = %name, "pool removed; its queued and in-flight requests finish first");
                retiring.insert(name.clone(), pool.clone());
                tokio::spawn(retire(self.state.clone(), pool.clone()));
            }
        }
        drop(retiring);
        self.state.table.store(Arc::new(RouteTable {
            router: Router::new(&new.routes),
            pools,
        }));
        self.state
            .recording
            .store(new.metrics.enabled, Ordering::Relaxed);
        certificates.serve();
        // Programs last: a new program's pool exists by now, and applying cannot fail.
        self.supervisor.apply(&new);
        tracing::info!(
            pools = new.pools.len(),
            routes = new.routes.len(),
            programs = new.programs.len(),
            "configuration applied"
        );
        *current = new;
        Ok(())
    }
}

/// Validates an edited config document whole, as a file: written as TOML text and read
/// back, so that an edit is checked exactly as the same change made in the file would be.
pub(crate) fn config_from_document(document: &toml::Table) -> Result<Config, ChangeError> {
    let text = toml::to_string(document)
        .map_err(|e| ChangeError::Invalid(format!("cannot write the config: {e}")))?;
    Config::from_str(&text, "admin API").map_err(|e| match e {
        ConfigError::Invalid { location, message } => match location.key {
            Some(key) => ChangeError::Invalid(format!("{key}: {message}")),
            None => ChangeError::Invalid(message),
        },
        ConfigError::Read { .. } => ChangeError::Invalid(e.to_string()),
    })
}

/// Listeners are bound once; what they are bound to cannot change without a restart.
fn fixed_settings_unchanged(old: &Config, new: &Config) -> Result<(), ChangeError> {
    let (a, b) = (&old.hub, &new.hub);
    let mut changed: Vec<&str> = [
        ("hub.listen", a.listen != b.listen),
        ("hub.workers_listen", a.workers_listen != b.workers_listen),
        (
            "hub.max_header_bytes",
            a.max_header_bytes != b.max_header_bytes,
        ),
        (
            "hub.header_read_timeout",
            a.header_read_timeout != b.header_read_timeout,
        ),
        ("hub.idle_timeout", a.idle_timeout != b.idle_timeout),
        ("hub.drain_grace", a.drain_grace != b.drain_grace),
        ("hub.ping_interval", a.ping_interval != b.ping_interval),
        (
            "hub.max_connections",
            a.max_connections != b.max_connections,
        ),
        (
            "hub.max_connections_per_ip",
            a.max_connections_per_ip != b.max_connections_per_ip,
        ),
        ("hub.min_body_rate", a.min_body_rate != b.min_body_rate),
        (
            "hub.tls.listen",
            a.tls.as_ref().map(|t| t.listen) != b.tls.as_ref().map(|t| t.listen),
        ),
    ]
    .into_iter()
    .filter_map(|(key, differs)| differs.then_some(key))
    .collect();
    // The certificates and the client CA may change: they are read again at every change.
    let certificates_aside = |hub: &crate::config::HubConfig| {
        let mut hub = hub.clone();
        if let Some(tls) = &mut hub.tls {
            tls.certificates.clear();
        }
        if let Some(tls) = &mut hub.worker_tls {
            tls.certificates.clear();
            tls.client_ca = None;
        }
        hub
    };
    if changed.is_empty() && certificates_aside(a) != certificates_aside(b) {
        changed.push("hub");
    }
    match (&old.admin, &new.admin) {
        (None, Some(_)) => changed.push("admin (added)"),
        (Some(_), None) => changed.push("admin (removed)"),
        (Some(a), Some(b)) => {
            if a.listen != b.listen {
                changed.push("admin.listen");
            }
            if a.allow_remote != b.allow_remote {
                changed.push("admin.allow_remote");
            }
            if a.tls.is_some() != b.tls.is_some() {
                changed.push("admin.tls (added or removed)");
            }
        }
        (None, None) => {}
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(ChangeError::Conflict(format!(
        "{} cannot change while the hub runs; restart the hub to apply, or leave {} as it was",
        changed.join(", "),
        if changed.len() == 1 { "it" } else { "them" }
    )))
}

/// Waits until a removed pool is empty, then tells its workers DRAIN and closes their
/// links. Stops if the pool was added back meanwhile.
async fn retire(state: Arc<HubState>, pool: Arc<Pool>) {
    loop {
        tokio::time::sleep(RETIRE_CHECK).await;
        let mut retiring = state.retiring.lock();
        match retiring.get(pool.name()) {
            Some(p) if Arc::ptr_eq(p, &pool) => {}
            _ => return,
        }
        if !pool.is_idle() {
            continue;
        }
        retiring.remove(pool.name());
        drop(retiring);
        let workers = pool.close_workers(CloseCode::Normal, "pool removed");
        tracing::info!(
            pool = pool.name(),
            workers,
            "removed pool is empty; its workers are told DRAIN"
        );
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hub_extra: &str, admin_extra: &str, rest: &str) -> Config {
        let text = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n{hub_extra}\n\
             [admin]\ntoken = \"a\"\n{admin_extra}\n[[pool]]\nname = \"p\"\ntoken = \"t\"\n{rest}"
        );
        Config::from_str(&text, "t.toml").unwrap()
    }

    #[test]
    fn pools_routes_token_and_metrics_may_change_live() {
        let old = config("", "", "");
        let new = config(
            "",
            "",
            "[metrics]\nenabled = false\n[[pool]]\nname = \"q\"\ntoken = \"u\"\n[[route]]\npool = \"q\"\n",
        );
        assert_eq!(fixed_settings_unchanged(&old, &new), Ok(()));
        let mut new_token = config("", "", "");
        new_token.admin.as_mut().unwrap().token = crate::config::Secret::new("b");
        assert_eq!(fixed_settings_unchanged(&old, &new_token), Ok(()));
    }

    #[test]
    fn listeners_and_connection_settings_may_not() {
        let old = config("", "", "");
        let e = fixed_settings_unchanged(&old, &config("idle_timeout = \"5s\"", "", ""));
        let Err(ChangeError::Conflict(why)) = e else {
            panic!("{e:?}")
        };
        assert!(why.starts_with("hub.idle_timeout cannot change"), "{why}");

        let mut moved = config("drain_grace = \"1s\"", "listen = \"127.0.0.1:1\"", "");
        moved.hub.listen = "127.0.0.1:2".parse().unwrap();
        let Err(ChangeError::Conflict(why)) = fixed_settings_unchanged(&old, &moved) else {
            panic!()
        };
        assert!(
            why.starts_with("hub.listen, hub.drain_grace, admin.listen cannot change"),
            "{why}"
        );

        let mut no_admin = config("", "", "");
        no_admin.admin = None;
        let Err(ChangeError::Conflict(why)) = fixed_settings_unchanged(&old, &no_admin) else {
            panic!()
        };
        assert!(why.contains("admin (removed)"), "{why}");
    }

    #[test]
    fn a_document_written_back_parses_to_the_same_config() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hub.toml");
        let config = Config::from_file(path).unwrap();
        let text = toml::to_string(&config.document.0).unwrap();
        let again = Config::from_str(&text, "again").unwrap();
        assert_eq!(again.hub, config.hub);
        assert_eq!(again.pools, config.pools);
        assert_eq!(again.programs, config.programs);
        assert_eq!(again.admin, config.admin);
        assert_eq!(again.metrics, config.metrics);
        assert_eq!(
            format!("{:?}", again.routes),
            format!("{:?}", config.routes)
        );
        assert!(again.document == config.document);
    }
}
