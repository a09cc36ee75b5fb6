//! W3C Trace Context: every request a worker (or a filter pool's upstream) gets carries a
//! `traceparent` field, so a worker's spans join the client's trace, or start one.
//!
//! A client's `traceparent` is passed on unchanged when it is usable: exactly one field
//! that parses as the W3C format (version, 32 hex digits of trace id, 16 of parent id,
//! flags; lowercase; neither id all zeros; version `ff` refused), its `tracestate` with
//! it. Otherwise the hub starts a trace: the client's `traceparent` and `tracestate` fields
//! go, and the head gets a new `traceparent` (version 00, sampled), as it gets a new
//! request id. The hub records no spans of its own, so it never becomes the parent.
//!
//! New trace ids are 64 random bits the OS gives once per hub followed by the request's
//! number through a bijective mix, so they are unique within a hub, and across hubs with
//! overwhelming odds, and their low bits look random to samplers that hash them; a parent
//! id is the number under a second mix. No system call per request.

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{Entry, HeaderMap};

use crate::error::HubError;
use crate::request::{Traceparent, TRACEPARENT, TRACEPARENT_LEN, TRACESTATE};

/// Makes the hub's trace contexts.
pub(crate) struct TraceIds {
    /// A new `traceparent` as far as it is the same for every request: `00-`, the trace
    /// id's high 64 bits (random, never zero), then `-` and `-01` around the parent id.
    template: [u8; TRACEPARENT_LEN],
    /// Offsets of the two mixes.
    trace_key: u64,
    parent_key: u64,
    next: AtomicU64,
}

impl TraceIds {
    /// Trace ids under fresh randomness from the OS.
    pub(crate) fn new() -> Result<TraceIds, HubError> {
        let random = || getrandom::u64().map_err(HubError::Entropy);
        Ok(TraceIds::with_keys(random()?, random()?, random()?))
    }

    fn with_keys(high: u64, trace_key: u64, parent_key: u64) -> TraceIds {
        let mut template = [b'0'; TRACEPARENT_LEN];
        template[..3].copy_from_slice(b"00-");
        write_hex(&mut template[3..19], high.max(1));
        template[35] = b'-';
        template[52..].copy_from_slice(b"-01");
        TraceIds {
            template,
            trace_key,
            parent_key,
            next: AtomicU64::new(0),
        }
    }

    /// The `traceparent` the hub must add to the request whose fields are `headers`: none
    /// when the client's is usable; else a new one, and the client's trace fields go.
    pub(crate) fn context(&self, headers: &mut HeaderMap) -> Option<Traceparent> {
        if let Entry::Occupied(sent) = headers.entry(TRACEPARENT) {
            let mut values = sent.iter();
            if let (Some(value), None) = (values.next(), values.next()) {
                if is_usable(value.as_bytes()) {
                    return None;
                }
            }
            sent.remove_entry_mult();
            tracing::debug!("the client's traceparent is unusable: a new trace starts");
        }
        headers.remove(TRACESTATE);
        Some(self.fresh())
    }

    /// A new `traceparent`: the template with the trace id's low 64 bits and a parent id.
    fn fresh(&self) -> Traceparent {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let low = mix(n.wrapping_add(self.trace_key));
        let parent = mix(n.wrapping_add(self.parent_key)).max(1);
        let mut buf = self.template;
        write_hex(&mut buf[19..35], low);
        write_hex(&mut buf[36..52], parent);
        Traceparent(buf)
    }
}

/// splitmix64's finalizer: a bijection on u64 whose outputs look random.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes `value` as 16 lowercase hex digits, two per byte.
fn write_hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(value.to_be_bytes()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

/// Whether `value` is a `traceparent` the W3C format allows a receiver to use.
fn is_usable(value: &[u8]) -> bool {
    if value.len() < TRACEPARENT_LEN {
        return false;
    }
    let hex = |range: std::ops::Range<usize>| {
        value[range]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |range: std::ops::Range<usize>| value[range].iter().any(|&b| b != b'0');
    let version = &value[..2];
    let framed = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    // Version 00 is exactly 55 bytes; a later version may carry more after a `-`.
    let length_fits = match version {
        b"00" => value.len() == TRACEPARENT_LEN,
        _ => value.len() == TRACEPARENT_LEN || value[TRACEPARENT_LEN] == b'-',
    };
    framed
        && length_fits
        && hex(0..2)
        && version != b"ff"
        && hex(3..35)
        && nonzero(3..35)
        && hex(36..52)
        && nonzero(36..52)
        && hex(53..55)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_examples_are_usable_and_broken_ones_are_not() {
        assert!(is_usable(GOOD.as_bytes()));
        assert!(is_usable(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(!is_usable(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_usable_context_passes_and_an_unusable_one_is_replaced() {
        let ids = TraceIds::with_keys(7, 8, 9);
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(GOOD));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=1"));
        assert_eq!(ids.context(&mut headers), None);
        assert_eq!(headers[TRACEPARENT], GOOD);
        assert_eq!(headers[TRACESTATE], "a=1");

        headers.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        let new = ids.context(&mut headers).expect("two fields are unusable");
        assert!(is_usable(new.as_bytes()), "{new:?}");
        assert_eq!(new.to_header_value().as_bytes(), new.as_bytes());
        assert!(!headers.contains_key(TRACEPARENT));
        assert!(!headers.contains_key(TRACESTATE));
    }

    #[test]
    fn new_contexts_are_well_formed_sampled_and_distinct() {
        let ids = TraceIds::with_keys(0, 1, 2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let new = ids.context(&mut HeaderMap::new()).unwrap();
            let text = String::from_utf8(new.as_bytes().to_vec()).unwrap();
            assert!(is_usable(text.as_bytes()), "{text}");
            assert!(text.starts_with("00-") && text.ends_with("-01"), "{text}");
            assert!(
                seen.insert(text[3..35].to_string()),
                "trace id repeated: {text}"
            );
        }
    }
}
