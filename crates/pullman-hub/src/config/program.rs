//! A `[[program]]` table: a worker program the hub starts, restarts and stops.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use super::values::{de_duration, de_name, de_positive_duration, parse_duration};

/// Default `program.instances`.
pub const DEFAULT_INSTANCES: u32 = 1;
/// Most instances of one program: each is a process the hub watches, and a few hundred is
/// already more than one machine's cores can keep busy.
pub const MAX_INSTANCES: u32 = 256;
/// Default `program.max_restarts`: five restarts ...
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// ... within a minute (`program.within`), Erlang/OTP's spirit: a program that crashes more
/// often than that is broken, not unlucky, and restarting it only adds noise.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Default `program.backoff`: the first restart after 100 ms (a crash from a passing cause is
/// over quickly), doubling up to 5 s (a crash loop costs little CPU).
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// Default `program.stop_grace`: time between SIGTERM and SIGKILL when the hub stops a
/// program. A worker drains its requests in flight on SIGTERM; by the time the hub stops its
/// programs its own drain has already waited for them, so 10 s is plenty.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// A `[[program]]` table: a worker program the hub starts, restarts when it exits, and stops
/// on drain. Each instance gets `PULLMAN_HUB`, `PULLMAN_POOL` and `PULLMAN_TOKEN` in its
/// environment, so `pullman worker` needs no flags.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// Unique name, as for pools.
    #[serde(deserialize_with = "de_name")]
    pub name: String,
    /// The pool its instances serve; one of the config's pools.
    #[serde(deserialize_with = "de_name")]
    pub pool: String,
    /// Program and arguments, run without a shell. A first word of exactly `pullman` runs
    /// the hub's own executable, so the demo and tests need no install.
    #[serde(deserialize_with = "de_command")]
    pub command: Vec<String>,
    /// How many copies run at once, 1 to [`MAX_INSTANCES`].
    #[serde(default = "default_instances", deserialize_with = "de_instances")]
    pub instances: u32,
    /// When an instance that exited is started again.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restart intensity: at most this many restarts (over all instances) ...
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// ... within this window; one more and the program is marked failed.
    #[serde(
        default = "default_restart_window",
        deserialize_with = "de_positive_duration"
    )]
    pub within: Duration,
    /// Wait before a restart: starts at the low end and doubles per crash in a row, up to
    /// the high end. Written `"100ms..5s"`.
    #[serde(default = "default_backoff", deserialize_with = "de_backoff")]
    pub backoff: Backoff,
    /// Time between SIGTERM and SIGKILL when the hub stops an instance.
    #[serde(default = "default_stop_grace", deserialize_with = "de_duration")]
    pub stop_grace: Duration,
    /// Extra environment variables for the instances.
    #[serde(default, deserialize_with = "de_env")]
    pub env: BTreeMap<String, String>,
}

/// When an instance that exited is started again (Erlang/OTP's child restart types).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Always, whatever the exit status.
    #[default]
    Permanent,
    /// Only after a crash: a non-zero exit status or a signal.
    Transient,
    /// Never.
    Temporary,
}

/// Exponential backoff between restarts: `min`, doubling per crash in a row, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl FromStr for Backoff {
    type Err = String;

    fn from_str(text: &str) -> Result<Backoff, String> {
        let Some((min, max)) = text.split_once("..") else {
            return Err(format!(
                "invalid backoff {text:?}: expected MIN..MAX, as in \"100ms..5s\""
            ));
        };
        let (min, max) = (parse_duration(min)?, parse_duration(max)?);
        if min.is_zero() {
            return Err(format!(
                "invalid backoff {text:?}: the first wait must be longer than zero"
            ));
        }
        if min > max {
            return Err(format!(
                "invalid backoff {text:?}: the first wait is longer than the longest"
            ));
        }
        Ok(Backoff { min, max })
    }
}

fn de_command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let command = Vec::<String>::deserialize(deserializer)?;
    match command.first() {
        None => Err(D::Error::custom(
            "the command is empty; give the program and its arguments, as in [\"pullman\", \"worker\"]",
        )),
        Some(program) if program.is_empty() => {
            Err(D::Error::custom("the command's program name is empty"))
        }
        Some(_) => Ok(command),
    }
}

fn de_instances<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let instances = u32::deserialize(deserializer)?;
    if !(1..=MAX_INSTANCES).contains(&instances) {
        return Err(D::Error::custom(format!(
            "instances must be 1 to {MAX_INSTANCES}, not {instances}"
        )));
    }
    Ok(instances)
}

fn de_backoff<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Backoff, D::Error> {
    String::deserialize(deserializer)?
        .parse()
        .map_err(D::Error::custom)
}

/// Environment names the supervisor sets itself, so a program cannot be pointed elsewhere by
/// mistake.
const RESERVED_ENV: [&str; 3] = ["PULLMAN_HUB", "PULLMAN_POOL", "PULLMAN_TOKEN"];

fn de_env<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let env = BTreeMap::<String, String>::deserialize(deserializer)?;
    for (name, value) in &env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(D::Error::custom(format!(
                "invalid environment variable name {name:?}"
            )));
        }
        if value.contains('\0') {
            return Err(D::Error::custom(format!(
                "the value of {name} contains a NUL byte"
            )));
        }
        if RESERVED_ENV.contains(&name.as_str()) {
            return Err(D::Error::custom(format!(
                "{name} is set by the hub for each instance; leave it out"
            )));
        }
    }
    Ok(env)
}

fn default_instances() -> u32 {
    DEFAULT_INSTANCES
}
fn default_max_restarts() -> u32 {
    DEFAULT_MAX_RESTARTS
}
fn default_restart_window() -> Duration {
    DEFAULT_RESTART_WINDOW
}
fn default_backoff() -> Backoff {
    DEFAULT_BACKOFF
}
fn default_stop_grace() -> Duration {
    DEFAULT_STOP_GRACE
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::{parse, HUB, POOL};

    #[test]
    fn programs_get_defaults_and_read_every_key() {
        let text = format!(
            "{HUB}{POOL}\n[[program]]\nname = \"a\"\npool = \"demo\"\ncommand = [\"w\"]\n\
             [[program]]\nname = \"b\"\npool = \"demo\"\ncommand = [\"w\", \"-v\"]\n\
             instances = 3\nrestart = \"temporary\"\nmax_restarts = 0\nwithin = \"2s\"\n\
             backoff = \"1s..1s\"\nstop_grace = \"0s\"\nenv = {{ A = \"1\" }}\n"
        );
        let config = parse(&text).unwrap();
        let a = &config.programs[0];
        assert_eq!(a.command, ["w"]);
        assert_eq!(a.instances, DEFAULT_INSTANCES);
        assert_eq!(a.restart, RestartPolicy::Permanent);
        assert_eq!(a.max_restarts, DEFAULT_MAX_RESTARTS);
        assert_eq!(a.within, DEFAULT_RESTART_WINDOW);
        assert_eq!(a.backoff, DEFAULT_BACKOFF);
        assert_eq!(a.stop_grace, DEFAULT_STOP_GRACE);
        assert!(a.env.is_empty());
        let b = &config.programs[1];
        assert_eq!((b.name.as_str(), b.pool.as_str()), ("b", "demo"));
        assert_eq!(b.command, ["w", "-v"]);
        assert_eq!(b.instances, 3);
        assert_eq!(b.restart, RestartPolicy::Temporary);
        assert_eq!(b.max_restarts, 0);
        assert_eq!(b.within, Duration::from_secs(2));
        assert_eq!(b.backoff.min, Duration::from_secs(1));
        assert_eq!(b.stop_grace, Duration::ZERO);
        assert_eq!(b.env["A"], "1");
        assert!(parse(&format!("{HUB}{POOL}")).unwrap().programs.is_empty());
    }
}
