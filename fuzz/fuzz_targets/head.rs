//! The request head view both ways: arbitrary blocks as a hostile hub (or arena) hands them
//! to a worker, and heads built from arbitrary fields as the hub builds them.
//!
//! The first byte picks the way.
//!
//! - Even: the rest is a head block. `HeadView::from_block` must accept it exactly when the
//!   layout of `docs/protocol.md` (restated in [`is_valid_block`]) says it is valid. An
//!   accepted block answers every accessor, each field is a slice of the raw text, and the
//!   head rebuilt from its fields with `HeadBuilder` has the same fields.
//! - Odd: the next byte is the version (folded into the four known) and how many header
//!   fields to declare beyond those given (0..=3, to reach the table's shrinking); the rest,
//!   split at `0x00`, is the method, the target, then names and values. The built head must
//!   validate, give back exactly those fields, and hold the HTTP/1.1-style text they make.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pullman_proto::{HeadBuilder, HeadView, Version};

fuzz_target!(|data: &[u8]| {
    match data {
        [way, block @ ..] if way % 2 == 0 => from_block(block),
        [_, shape, fields @ ..] => built(*shape, fields),
        _ => {}
    }
});

fn from_block(block: &[u8]) {
    let view = HeadView::from_block(Bytes::copy_from_slice(block));
    assert_eq!(view.is_ok(), is_valid_block(block), "{view:?}");
    let Ok(view) = view else {
        return;
    };
    let raw = view.raw();
    let fields = fields_of(&view);
    let slices = view.headers().flat_map(|(name, value)| [name, value]);
    for field in [view.method(), view.target()].into_iter().chain(slices) {
        assert!(is_inside(field, raw), "a field outside the raw text");
    }
    let (path, query) = (view.path(), view.query());
    let mut target = path.to_vec();
    if let Some(q) = query {
        target.push(b'?');
        target.extend_from_slice(q);
    }
    assert_eq!(target, view.target());
    for i in 0..view.header_count() {
        let (name, value) = view.header_bytes(i).expect("a header below the count");
        assert_eq!(
            (&name[..], &value[..]),
            view.header(i).expect("the same header")
        );
    }
    assert!(view.header(view.header_count()).is_none());
    if let Some((name, _)) = fields.first() {
        let first = fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        assert_eq!(view.header_value(name), first.map(|(_, v)| &v[..]));
    }
    let _ = format!("{view:?}");

    let again = build(view.version(), view.method(), view.target(), &fields, 0);
    assert_eq!(again.method(), view.method());
    assert_eq!(again.target(), view.target());
    assert_eq!(fields_of(&again), fields);
    assert_eq!(HeadView::from_block(again.as_block().clone()), Ok(again));
    assert_eq!(HeadView::from_block(view.as_block().clone()), Ok(view));
}

fn built(shape: u8, bytes: &[u8]) {
    let version = Version::from_u8(shape % 4).expect("a known version");
    let extra = usize::from(shape / 4 % 4);
    let mut parts = bytes.split(|&b| b == 0);
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let rest: Vec<&[u8]> = parts.collect();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = rest
        .chunks_exact(2)
        .map(|pair| (pair[0].to_vec(), pair[1].to_vec()))
        .collect();
    let view = build(version, method, target, &fields, extra);
    let checked = HeadView::from_block(view.as_block().clone()).expect("a built head validates");
    assert_eq!(checked, view);
    assert_eq!(view.version(), version);
    assert_eq!(view.method(), method);
    assert_eq!(view.target(), target);
    assert_eq!(fields_of(&view), fields);

    let mut text = [
        method,
        b" ",
        target,
        b" ",
        version.as_str().as_bytes(),
        b"\r\n",
    ]
    .concat();
    for (name, value) in &fields {
        text.extend_from_slice(&[&name[..], b": ", &value[..], b"\r\n"].concat());
    }
    text.extend_from_slice(b"\r\n");
    assert_eq!(view.raw(), &text[..]);
}

/// A head of these fields, built declaring `extra` more header fields than it adds (the
/// table shrinks when it ends); with none extra, one more field is refused.
fn build(
    version: Version,
    method: &[u8],
    target: &[u8],
    fields: &[(Vec<u8>, Vec<u8>)],
    extra: usize,
) -> HeadView {
    let mut builder = HeadBuilder::new(version, method, target, fields.len() + extra);
    for (name, value) in fields {
        builder
            .header(name, value)
            .expect("within the declared count");
    }
    if extra == 0 {
        assert!(
            builder.header(b"x", b"y").is_err(),
            "a field past the declared count"
        );
    }
    let view = builder.finish();
    assert_eq!(view.header_count(), fields.len());
    view
}

fn fields_of(view: &HeadView) -> Vec<(Vec<u8>, Vec<u8>)> {
    let fields: Vec<_> = view
        .headers()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(fields.len(), view.header_count());
    fields
}

/// Whether `part` is a slice of `whole`'s memory.
fn is_inside(part: &[u8], whole: &[u8]) -> bool {
    let (start, end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    let at = part.as_ptr() as usize;
    part.is_empty() || (start <= at && at + part.len() <= end)
}

/// The block layout of `docs/protocol.md`, read independently of `HeadView`: version byte
/// 0..=3, the header count n and raw_len, exactly (2 + 2n) spans of 8 bytes then raw_len
/// bytes, and every span (offset, length) inside the raw bytes.
fn is_valid_block(block: &[u8]) -> bool {
    let Some(prefix) = block.get(..8) else {
        return false;
    };
    let be32 = |b: &[u8]| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let n = u64::from(u16::from_be_bytes([prefix[2], prefix[3]]));
    let raw_len = be32(&prefix[4..8]);
    let spans = 2 + 2 * n;
    if prefix[0] > 3 || block.len() as u64 != 8 + spans * 8 + raw_len {
        return false;
    }
    block[8..8 + spans as usize * 8]
        .chunks_exact(8)
        .all(|span| be32(&span[..4]) + be32(&span[4..]) <= raw_len)
}
