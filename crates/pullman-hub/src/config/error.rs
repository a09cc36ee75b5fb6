//! Why a config was refused, and where. A check that failed is a [`Problem`]: a byte range of
//! the text and a message. [`Problem::locate`] turns it into a [`ConfigError`] that names the
//! file, the line and column, and the dotted key.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::routing::RouteError;

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    /// The OS error is part of the message, not its source, so that it is said once
    /// whether the error is printed alone or as a chain.
    #[error("{}: cannot read config: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The text is not TOML, does not have the config's shape, or fails a check.
    #[error("{location}: {message}")]
    Invalid {
        /// Where in which file.
        location: Location,
        /// What is wrong, and when it helps, what would be right.
        message: String,
    },
}

/// Where a config error is: the file, and when known the position and the key.
/// Displays as `FILE:LINE:COLUMN: KEY`, leaving out what is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name, or what the text came from.
    pub origin: String,
    /// Line and column, both counted from 1.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the key, e.g. `route[2].pool` (array indexes count from 0).
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        Ok(())
    }
}

/// A check that failed: where (a byte range of the text, when known) and why.
#[derive(Debug)]
pub(super) struct Problem {
    span: Option<Range<usize>>,
    message: String,
    /// An earlier place the message refers to (the first use of a name, say).
    see: Option<Range<usize>>,
}

impl Problem {
    pub(super) fn new(span: Option<Range<usize>>, message: impl Into<String>) -> Problem {
        Problem {
            span,
            message: message.into(),
            see: None,
        }
    }

    pub(super) fn at(span: Range<usize>, message: impl Into<String>) -> Problem {
        Problem::new(Some(span), message)
    }

    pub(super) fn see(mut self, earlier: Range<usize>) -> Problem {
        self.see = Some(earlier);
        self
    }

    /// Turns the byte range into a line, a column and a key path of `text`.
    pub(super) fn locate(self, text: &str, origin: &str) -> ConfigError {
        // toml gives errors about the document as a whole (a missing top-level table) the
        // empty span at 0, which points nowhere.
        let span = self.span.filter(|span| *span != (0..0));
        let location = Location {
            origin: origin.to_owned(),
            position: span.as_ref().map(|span| line_column(text, span.start)),
            key: span.and_then(|span| key_path_at(text, span.start)),
        };
        let mut message = self.message;
        if let Some(earlier) = self.see {
            let (line, _) = line_column(text, earlier.start);
            message.push_str(&format!(" (see line {line})"));
        }
        ConfigError::Invalid { location, message }
    }
}

impl From<RouteError> for Problem {
    fn from(error: RouteError) -> Problem {
        Problem::at(error.span, error.message)
    }
}

/// Line and column (from 1, the column in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted key path (`route[2].pool`) of the innermost key or value of `text` that holds
/// byte `offset`. Parses `text` again: this runs only when there is an error to report.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut path = String::new();
    find_in_table(root.get_ref(), offset, &mut path).then_some(path)
}

fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if key.span().contains(&offset) || find_in_value(value, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    let in_child = match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, offset, path),
        DeValue::Array(items) => items.iter().enumerate().any(|(index, item)| {
            let len = path.len();
            let _ = write!(path, "[{index}]");
            let found = find_in_value(item, offset, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        _ => false,
    };
    // The span of an array-of-tables item is its `[[header]]` only, so children are searched
    // first and this catches errors about the table as a whole (e.g. a missing key).
    in_child || value.span().contains(&offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parse, refuse, HUB, POOL};

    #[test]
    fn deserialize_errors_name_line_column_and_key() {
        let text = format!("{HUB}{POOL}timeout = \"30\"\n");
        let (location, message) = refuse(&text);
        assert_eq!(location.origin, "t.toml");
        assert_eq!(location.position, Some((7, 11)));
        assert_eq!(location.key.as_deref(), Some("pool[0].timeout"));
        assert!(message.contains("invalid duration \"30\""), "{message}");
        let shown = parse(&text).unwrap_err().to_string();
        assert!(
            shown.starts_with("t.toml:7:11: pool[0].timeout: invalid duration"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_where_they_are() {
        let (location, message) = refuse(&format!("{HUB}idle_timout = \"1s\"\n{POOL}"));
        assert_eq!(location.position, Some((4, 1)));
        assert_eq!(location.key.as_deref(), Some("hub.idle_timout"));
        assert!(message.contains("unknown field `idle_timout`"), "{message}");
    }

    #[test]
    fn document_level_problems_have_no_position() {
        let (location, message) = refuse(HUB);
        assert_eq!(location.position, None);
        assert!(message.contains("at least one pool"), "{message}");
        let (location, message) = refuse("");
        assert_eq!(location.position, None);
        assert_eq!(message, "missing field `hub`");
        let (location, _) = refuse(&format!("{HUB}{POOL}[[route]\n"));
        assert_eq!(location.position.map(|(line, _)| line), Some(7));
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_column("x", 0), (1, 1));
    }
}
