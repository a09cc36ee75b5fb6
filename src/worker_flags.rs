//! The values of `pullman worker`'s flags that are more than a number: `--gate cpu:0.8`,
//! `--gate mem:512MiB`, and the sizes and durations other flags take. clap names the flag
//! when one of these parsers refuses a value.

use std::time::Duration;

/// Why a flag's value was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error(
        "{0:?}: expected cpu:SHARE (0 < SHARE <= 1, as in cpu:0.8) or mem:SIZE (as in mem:512MiB)"
    )]
    Gate(String),
    #[error("{0:?}: expected a busy share above 0 and at most 1, as in cpu:0.8")]
    Share(String),
    #[error("{0:?}: expected an integer and a unit (ms, s, m), as in 20s")]
    Duration(String),
    #[error("{0:?}: expected a number of bytes with an optional unit (B, KiB, MiB, GiB, TiB), as in 512MiB")]
    Size(String),
}

/// One `--gate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GateFlag {
    /// `cpu:SHARE`: take work while the CPU (the host's, and the cgroup's quota if any) is at
    /// most SHARE busy.
    Cpu(f64),
    /// `mem:SIZE`: take work while at least SIZE bytes are available.
    Mem(u64),
}

pub fn parse_gate(text: &str) -> Result<GateFlag, FlagError> {
    match text.split_once(':') {
        Some(("cpu", share)) => {
            let share: f64 = share.parse().map_err(|_| FlagError::Share(share.into()))?;
            if !(share > 0.0 && share <= 1.0) {
                return Err(FlagError::Share(text.into()));
            }
            Ok(GateFlag::Cpu(share))
        }
        Some(("mem", size)) => match parse_size(size)? {
            0 => Err(FlagError::Size(size.into())),
            bytes => Ok(GateFlag::Mem(bytes)),
        },
        _ => Err(FlagError::Gate(text.into())),
    }
}

/// Bytes, written as an integer and an optional binary unit: `65536`, `64KiB`, `512MiB`.
pub fn parse_size(text: &str) -> Result<u64, FlagError> {
    let bad = || FlagError::Size(text.into());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    number.checked_mul(scale).ok_or_else(bad)
}

/// A duration written as an integer and a unit: `500ms`, `20s`, `5m`; more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, FlagError> {
    let bad = || FlagError::Duration(text.into());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        return Err(bad());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_gate("cpu:0.8").unwrap(), GateFlag::Cpu(0.8));
        assert_eq!(parse_gate("cpu:1").unwrap(), GateFlag::Cpu(1.0));
        assert_eq!(parse_gate("mem:512MiB").unwrap(), GateFlag::Mem(512 << 20));
        assert_eq!(parse_gate("mem:4096").unwrap(), GateFlag::Mem(4096));
        for bad in [
            "cpu:0", "cpu:1.5", "cpu:-1", "cpu:NaN", "cpu:", "cpu:80%", "mem:0", "mem:5MB", "mem:",
            "mem:-1", "disk:1", "cpu", "",
        ] {
            assert!(parse_gate(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["0s", "20", "s", "1h", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} passed");
        }
    }
}
