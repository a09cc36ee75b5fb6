//! Request ids: every request the front serves has one, in its `x-request-id` field, from
//! the head the worker gets (and a filter pool's upstream) to the response the client gets
//! and the hub's log lines about the request.
//!
//! A client's id is kept when it is usable: exactly one `x-request-id` field, of 1 to
//! [`MAX_CLIENT_ID_LEN`] bytes, each visible ASCII (`!` to `~`: no space, no control byte,
//! nothing that could split or forge a log line). Otherwise (several fields, an empty one, a
//! longer one, other bytes) the hub drops the client's field(s) and sets its own, and says
//! why at debug level. The hub's ids are `PREFIX-N`: 16 hex digits of randomness the OS gives
//! once per hub, then the request's number in this hub in hex (`9f2c41e07ab3d855-1a`). They
//! are unique across hubs and restarts with overwhelming odds (64 random bits) and cost a
//! counter increment and a short copy, not a system call, per request.

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{Entry, HeaderMap, HeaderValue};

use crate::error::HubError;
use crate::request::{RequestId, X_REQUEST_ID};

/// The longest client id the hub keeps. Common ids are far shorter (a UUID is 36 bytes, a
/// W3C trace id 32; Heroku's router accepts 20 to 200); the bound keeps a client from making
/// every log line about its request as long as its header limit allows.
pub(crate) const MAX_CLIENT_ID_LEN: usize = 200;

/// Hex digits of the random prefix (64 bits).
const PREFIX_LEN: usize = 16;

/// The longest id the hub makes: prefix, `-`, a `u64` in hex.
const MAX_ID_LEN: usize = PREFIX_LEN + 1 + 16;

/// Makes the hub's request ids.
pub(crate) struct RequestIds {
    prefix: [u8; PREFIX_LEN],
    next: AtomicU64,
}

impl RequestIds {
    /// Ids under a fresh random prefix from the OS.
    pub(crate) fn new() -> Result<RequestIds, HubError> {
        let random = getrandom::u64().map_err(HubError::Entropy)?;
        Ok(RequestIds::with_prefix(random))
    }

    fn with_prefix(random: u64) -> RequestIds {
        let mut prefix = [0u8; PREFIX_LEN];
        for (i, digit) in prefix.iter_mut().enumerate() {
            *digit = hex_digit(random >> (4 * (PREFIX_LEN - 1 - i)));
        }
        RequestIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// The id of the request whose fields are `headers`: the client's when usable; else a
    /// new one, and the client's fields go (the head view adds the new one, and so does a
    /// filter pool's request upstream).
    pub(crate) fn assign(&self, headers: &mut HeaderMap) -> RequestId {
        let unusable = match headers.entry(X_REQUEST_ID) {
            Entry::Vacant(_) => None,
            Entry::Occupied(sent) => {
                let mut values = sent.iter();
                let why = match (values.next(), values.next()) {
                    (Some(value), None) => why_unusable(value),
                    _ => Some("several x-request-id fields"),
                };
                match why {
                    None => {
                        return RequestId {
                            value: sent.get().clone(),
                            is_new: false,
                            new_trace: None,
                        }
                    }
                    Some(why) => {
                        sent.remove_entry_mult();
                        Some(why)
                    }
                }
            }
        };
        let id = RequestId {
            value: self.fresh(),
            is_new: true,
            new_trace: None,
        };
        if let Some(why) = unusable {
            tracing::debug!(
                request_id = id.as_str(),
                why,
                "the client's x-request-id is unusable: replaced"
            );
        }
        id
    }

    /// A new id: the prefix, `-`, the next number in hex.
    fn fresh(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; MAX_ID_LEN];
        buf[..PREFIX_LEN].copy_from_slice(&self.prefix);
        buf[PREFIX_LEN] = b'-';
        let digits = (16 - n.leading_zeros() as usize / 4).max(1);
        let end = PREFIX_LEN + 1 + digits;
        for (i, digit) in buf[PREFIX_LEN + 1..end].iter_mut().enumerate() {
            *digit = hex_digit(n >> (4 * (digits - 1 - i)));
        }
        // Hex digits and `-` are always a valid value.
        HeaderValue::from_bytes(&buf[..end]).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// Why a client's id cannot be kept, if it cannot.
fn why_unusable(value: &HeaderValue) -> Option<&'static str> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        Some("empty")
    } else if bytes.len() > MAX_CLIENT_ID_LEN {
        Some("longer than 200 bytes")
    } else if !bytes.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Some("a byte that is not visible ASCII")
    } else {
        None
    }
}

/// The lowest 4 bits of `n` as a lower-case hex digit.
fn hex_digit(n: u64) -> u8 {
    b"0123456789abcdef"[(n & 0xf) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.com"));
        for v in values {
            h.append(X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn the_hubs_ids_are_the_prefix_and_a_hex_counter() {
        let ids = RequestIds::with_prefix(0x0123_4567_89ab_cdef);
        let made: Vec<HeaderValue> = (0..17).map(|_| ids.fresh()).collect();
        assert_eq!(made[0], "0123456789abcdef-0");
        assert_eq!(made[10], "0123456789abcdef-a");
        assert_eq!(made[16], "0123456789abcdef-10");
        ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(ids.fresh(), "0123456789abcdef-ffffffffffffffff");
    }

    #[test]
    fn two_hubs_make_different_ids() {
        let (a, b) = (RequestIds::new().unwrap(), RequestIds::new().unwrap());
        assert_ne!(a.fresh(), b.fresh());
    }

    #[test]
    fn a_request_without_an_id_gets_a_new_one() {
        let ids = RequestIds::with_prefix(7);
        let mut h = headers(&[]);
        let first = ids.assign(&mut h);
        assert!(first.is_new);
        assert_eq!(first.value, "0000000000000007-0");
        assert_eq!(
            h.len(),
            1,
            "the head view adds the id, not the client's fields"
        );
        assert_eq!(ids.assign(&mut headers(&[])).value, "0000000000000007-1");
    }

    #[test]
    fn a_usable_client_id_is_kept() {
        let ids = RequestIds::with_prefix(7);
        let longest = vec![b'~'; MAX_CLIENT_ID_LEN];
        for value in [&b"abc-123"[..], b"!", &longest] {
            let mut h = headers(&[value]);
            let id = ids.assign(&mut h);
            assert!(!id.is_new);
            assert_eq!(id.value.as_bytes(), value);
            assert_eq!(id.as_str().as_bytes(), value);
            assert_eq!(h.get_all(X_REQUEST_ID).iter().count(), 1);
        }
    }

    #[test]
    fn an_unusable_client_id_is_replaced_and_its_fields_go() {
        let ids = RequestIds::with_prefix(7);
        let too_long = vec![b'a'; MAX_CLIENT_ID_LEN + 1];
        for values in [
            vec![&b""[..]],
            vec![&too_long[..]],
            vec![b"with space"],
            vec![b"tab\there"],
            vec![b"caf\xc3\xa9"],
            vec![b"one", b"two"],
        ] {
            let mut h = headers(&values);
            let id = ids.assign(&mut h);
            assert!(id.is_new, "{values:?}");
            assert!(id.value.as_bytes().starts_with(b"0000000000000007-"));
            assert!(!h.contains_key(X_REQUEST_ID), "{values:?}");
            assert_eq!(h.len(), 1, "{values:?}");
        }
    }
}
