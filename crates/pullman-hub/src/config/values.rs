//! The values several tables take, each checked as it is read: durations, socket addresses,
//! names and secrets.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _, Visitor};
use serde::Deserialize;

/// Longest duration accepted anywhere: a week is longer than any timeout or grace period
/// anyone means, and small enough that `Instant::now() + d` can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration written as an integer and a unit: `250ms`, `10s`, `5m`, `1h`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration {text:?}: expected an integer and a unit (ms, s, m or h), as in \"10s\""
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(expected());
    }
    let too_long = || format!("duration {text:?} is longer than the limit of 7 days");
    // Any number of digits beyond u64 is past the limit anyway.
    let number: u64 = number.parse().map_err(|_| too_long())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(too_long)?),
        "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(too_long)?),
        _ => return Err(expected()),
    };
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration string such as \"10s\"")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
            parse_duration(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

pub(super) fn de_positive_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let duration = de_duration(deserializer)?;
    if duration.is_zero() {
        return Err(D::Error::custom("the duration must be more than zero"));
    }
    Ok(duration)
}

/// Writes a duration the way the config reads it (`250ms`, `10s`, `5m`, `1h`), for the
/// admin API's answers.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    match secs {
        0 => "0s".to_string(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub(super) fn de_socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        D::Error::custom(format!(
            "invalid address {text:?}: expected IP:PORT, as in \"127.0.0.1:8080\" or \"[::]:8080\""
        ))
    })
}

/// Longest pool or route name: names become metric labels and log fields, so they stay
/// short.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a pool or route name: 1 to [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 _ . -`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name {name:?} must have 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "name {name:?} has {bad:?}; names use only A-Z, a-z, 0-9, '_', '.' and '-'"
        ));
    }
    Ok(())
}

pub(super) fn de_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    check_name(&name).map_err(D::Error::custom)?;
    Ok(name)
}

/// A route's `name`, checked as it is read by the rule for every name. The router reads the
/// rest of a `[[route]]` table; the rule for names is the config's, shared with pools and
/// programs.
pub(super) struct RouteName(String);

impl AsRef<str> for RouteName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RouteName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RouteName, D::Error> {
        let name = String::deserialize(deserializer)?;
        check_name(&name).map_err(D::Error::custom)?;
        Ok(RouteName(name))
    }
}

/// A secret string, such as a worker token. Its `Debug` prints `MASKED` and it has no
/// `Display`, so it does not end up in logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself. Compare it in constant time (e.g. with `subtle`), never with `==`
    /// on what a peer sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}

/// Largest secret file read: a token or a key password is a line, not a document.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// `{ file = "/abs/path" }` or `{ env = "NAME" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    file: Option<String>,
    env: Option<String>,
}

impl SecretRef {
    /// The secret it points to, read now (so a reload reads a rotated file again).
    fn read(self) -> Result<String, String> {
        match (self.file, self.env) {
            (Some(path), None) => {
                if !std::path::Path::new(&path).is_absolute() {
                    return Err(format!("the secret file {path:?} must be an absolute path"));
                }
                let mut text = String::new();
                std::fs::File::open(&path)
                    .and_then(|f| {
                        use std::io::Read;
                        f.take(MAX_SECRET_FILE_BYTES + 1).read_to_string(&mut text)
                    })
                    .map_err(|e| format!("reading the secret file {path:?}: {e}"))?;
                if text.len() as u64 > MAX_SECRET_FILE_BYTES {
                    return Err(format!(
                        "the secret file {path:?} is larger than {MAX_SECRET_FILE_BYTES} bytes"
                    ));
                }
                // A file written by `echo` or an editor ends with a line break that is no
                // part of the secret.
                let line = text.strip_suffix('\n').unwrap_or(&text);
                Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
            }
            (None, Some(name)) => std::env::var(&name).map_err(|_| {
                format!("the environment variable {name:?} of a secret is not set (or not UTF-8)")
            }),
            _ => Err(
                "a secret read from elsewhere is { file = \"/path\" } or { env = \"NAME\" }".into(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// A string, or `{ file = "/abs/path" }` (the file's text, without its final line
    /// break) or `{ env = "NAME" }` (the environment variable's value). Never empty.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = String;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret: a string, { file = \"/path\" } or { env = \"NAME\" }")
            }

            fn visit_str<E: serde::de::Error>(self, secret: &str) -> Result<String, E> {
                Ok(secret.to_string())
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
                let source =
                    SecretRef::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                source.read().map_err(A::Error::custom)
            }
        }

        let secret = deserializer.deserialize_any(SecretVisitor)?;
        if secret.is_empty() {
            return Err(D::Error::custom("the token must not be empty"));
        }
        Ok(Secret(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parse, refuse, HUB, POOL};

    /// The token of the one pool of a config whose pool token is `token` (TOML).
    fn pool_token(token: &str) -> String {
        let config = parse(&format!("{HUB}[[pool]]\nname = \"p\"\ntoken = {token}\n")).unwrap();
        config.pools[0].token.as_ref().unwrap().expose().to_string()
    }

    #[test]
    fn a_secret_is_read_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let path = file.display().to_string();
        assert_eq!(pool_token(&format!("{{ file = {path:?} }}")), "from-a-file");
        std::fs::write(&file, "rotated\r\n").unwrap();
        assert_eq!(
            pool_token(&format!("{{ file = {path:?} }}")),
            "rotated",
            "read again at each load, so a reload sees a rotated file"
        );
        // A name no other test sets.
        std::env::set_var("PULLMAN_TEST_SECRET_7F3A", "from-the-env");
        assert_eq!(
            pool_token("{ env = \"PULLMAN_TEST_SECRET_7F3A\" }"),
            "from-the-env"
        );

        let refused = |token: &str| {
            let text = format!("{HUB}[[pool]]\nname = \"p\"\ntoken = {token}\n");
            let (location, message) = refuse(&text);
            let key = location.key.unwrap_or_default();
            assert!(key.starts_with("pool[0].token"), "{key}: {message}");
            message
        };
        assert!(refused("{ file = \"relative/token\" }").contains("absolute"));
        let missing = dir.path().join("missing").display().to_string();
        assert!(refused(&format!("{{ file = {missing:?} }}")).contains(&missing));
        std::fs::write(&file, "\n").unwrap();
        assert!(refused(&format!("{{ file = {path:?} }}")).contains("empty"));
        std::fs::write(&file, vec![b'x'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        assert!(refused(&format!("{{ file = {path:?} }}")).contains("larger"));
        assert!(refused("{ env = \"PULLMAN_TEST_SECRET_NEVER_SET\" }").contains("not set"));
        assert!(refused("{ path = \"/x\" }").contains("unknown field `path`"));
        assert!(refused("{ file = \"/x\", env = \"X\" }").contains("{ file = "));
        assert!(refused("7").contains("a secret: a string"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("168h"), Ok(MAX_DURATION));
        for bad in [
            "", "10", "s", "1.5s", "-1s", "+1s", "10 s", "10S", "1d", "1sec", " 1s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("expected an integer and a unit"),
                "{bad:?}: {err}"
            );
        }
        for long in ["169h", "99999999999999999999s", "307445734561825861m"] {
            let err = parse_duration(long).unwrap_err();
            assert!(err.contains("longer than the limit"), "{long:?}: {err}");
        }
    }

    #[test]
    fn durations_format_as_they_parse() {
        for text in ["0s", "250ms", "1500ms", "10s", "90s", "5m", "1h", "168h"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(format_duration(duration), text);
        }
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config = parse(&format!("{HUB}{POOL}")).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("MASKED"), "{debug}");
    }
}
