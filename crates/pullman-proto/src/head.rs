//! The request head view: the raw head bytes plus a span table.
//!
//! The hub parses a request once; what it hands every transport is this view: the head as
//! HTTP/1.1-style text (`METHOD SP TARGET SP VERSION CRLF`, `name: value CRLF` per header,
//! `CRLF`) and the offsets and lengths of the method, the target and each header name and
//! value inside that text. A worker reads fields by slicing, never by parsing again, and the
//! same block of bytes sits in a REQUEST frame or in a shared-memory arena.
//!
//! Block layout (all integers big-endian):
//!
//! ```text
//! 0   version      u8     0 = HTTP/1.0, 1 = HTTP/1.1, 2 = HTTP/2, 3 = HTTP/3
//! 1   reserved     u8     0
//! 2   header_count u16    n
//! 4   raw_len      u32
//! 8   spans        (2 + 2n) x (offset u32, len u32): method, target, name0, value0, ...
//! ..  raw          raw_len bytes; span offsets count from here
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the span table.
const PREFIX_LEN: usize = 8;
/// Bytes per span: offset u32 and length u32.
const SPAN_LEN: usize = 8;

/// HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Version {
    /// HTTP/1.0
    Http10 = 0,
    /// HTTP/1.1
    Http11 = 1,
    /// HTTP/2
    Http2 = 2,
    /// HTTP/3
    Http3 = 3,
}

impl Version {
    /// The version for a byte, if known.
    pub fn from_u8(b: u8) -> Option<Version> {
        Some(match b {
            0 => Version::Http10,
            1 => Version::Http11,
            2 => Version::Http2,
            3 => Version::Http3,
            _ => return None,
        })
    }

    /// The version as it appears on a request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
            Version::Http3 => "HTTP/3",
        }
    }
}

/// Why a head block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Fewer bytes than the prefix and span table announce.
    #[error("head block shorter than its span table says")]
    Truncated,
    /// A span points outside the raw bytes.
    #[error("span outside the raw head bytes")]
    SpanOutOfRange,
    /// The version byte is unknown.
    #[error("unknown HTTP version byte")]
    BadVersion,
}

/// A validated head block. Cheap to clone (reference counted); every accessor slices.
#[derive(Clone, PartialEq, Eq)]
pub struct HeadView {
    block: Bytes,
}

impl std::fmt::Debug for HeadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadView")
            .field("method", &String::from_utf8_lossy(self.method()))
            .field("target", &String::from_utf8_lossy(self.target()))
            .field("headers", &self.header_count())
            .finish()
    }
}

impl HeadView {
    /// Checks a block (from a frame or an arena) and wraps it. Every span is verified here
    /// once, so the accessors below never fail.
    pub fn from_block(block: Bytes) -> Result<HeadView, HeadError> {
        if block.len() < PREFIX_LEN {
            return Err(HeadError::Truncated);
        }
        Version::from_u8(block[0]).ok_or(HeadError::BadVersion)?;
        let n = u16::from_be_bytes([block[2], block[3]]) as usize;
        let raw_len = u32::from_be_bytes([block[4], block[5], block[6], block[7]]) as usize;
        let raw_start = PREFIX_LEN + (2 + 2 * n) * SPAN_LEN;
        if block.len() != raw_start + raw_len {
            return Err(HeadError::Truncated);
        }
        for i in 0..2 + 2 * n {
            let (off, len) = read_span(&block, i);
            if off.checked_add(len).is_none_or(|end| end > raw_len) {
                return Err(HeadError::SpanOutOfRange);
            }
        }
        Ok(HeadView { block })
    }

    /// The whole encoded block, as it travels.
    pub fn as_block(&self) -> &Bytes {
        &self.block
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        // Checked in from_block.
        Version::from_u8(self.block[0]).unwrap_or(Version::Http11)
    }

    /// The number of header fields (a name repeated counts each time).
    pub fn header_count(&self) -> usize {
        u16::from_be_bytes([self.block[2], self.block[3]]) as usize
    }

    /// The raw head text.
    pub fn raw(&self) -> &[u8] {
        &self.block[self.raw_start()..]
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &[u8] {
        self.span(0)
    }

    /// The request target as sent: path and query (origin form) or an absolute URI.
    pub fn target(&self) -> &[u8] {
        self.span(1)
    }

    /// The target as a shared slice of the block (no copy).
    pub fn target_bytes(&self) -> Bytes {
        self.span_bytes(1)
    }

    /// The target up to the first `?`.
    pub fn path(&self) -> &[u8] {
        let t = self.target();
        match t.iter().position(|&b| b == b'?') {
            Some(q) => &t[..q],
            None => t,
        }
    }

    /// The target after the first `?`, if any.
    pub fn query(&self) -> Option<&[u8]> {
        let t = self.target();
        t.iter().position(|&b| b == b'?').map(|q| &t[q + 1..])
    }

    /// Header field `i` as (name, value); `None` past the end.
    pub fn header(&self, i: usize) -> Option<(&[u8], &[u8])> {
        (i < self.header_count()).then(|| (self.span(2 + 2 * i), self.span(3 + 2 * i)))
    }

    /// Header field `i` as shared slices of the block (no copy).
    pub fn header_bytes(&self, i: usize) -> Option<(Bytes, Bytes)> {
        (i < self.header_count()).then(|| (self.span_bytes(2 + 2 * i), self.span_bytes(3 + 2 * i)))
    }

    /// All header fields in order.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        (0..self.header_count()).filter_map(move |i| self.header(i))
    }

    /// The first value of a header, compared case-insensitively by name.
    pub fn header_value(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn raw_start(&self) -> usize {
        PREFIX_LEN + (2 + 2 * self.header_count()) * SPAN_LEN
    }

    fn span(&self, i: usize) -> &[u8] {
        let (off, len) = read_span(&self.block, i);
        let start = self.raw_start() + off;
        &self.block[start..start + len]
    }

    fn span_bytes(&self, i: usize) -> Bytes {
        let (off, len) = read_span(&self.block, i);
        let start = self.raw_start() + off;
        self.block.slice(start..start + len)
    }
}

/// Span `i` of the table as (offset, length). One bounds check for the whole entry.
#[inline]
fn read_span(block: &[u8], i: usize) -> (usize, usize) {
    let at = PREFIX_LEN + i * SPAN_LEN;
    let entry: &[u8; SPAN_LEN] = block[at..at + SPAN_LEN]
        .try_into()
        .expect("a slice of SPAN_LEN bytes");
    let [o0, o1, o2, o3, l0, l1, l2, l3] = *entry;
    (
        u32::from_be_bytes([o0, o1, o2, o3]) as usize,
        u32::from_be_bytes([l0, l1, l2, l3]) as usize,
    )
}

/// Writes a head block in one pass: the header count is declared up front so the span table
/// can be filled in place while the raw text is appended behind it.
#[derive(Debug)]
pub struct HeadBuilder {
    buf: BytesMut,
    declared: usize,
    written: usize,
}

impl HeadBuilder {
    /// Starts a head with room for `header_count` header fields.
    ///
    /// # Panics
    /// If `header_count` exceeds `u16::MAX`, or any piece exceeds `u32::MAX` bytes: the hub
    /// bounds heads far below either.
    pub fn new(version: Version, method: &[u8], target: &[u8], header_count: usize) -> Self {
        assert!(header_count <= u16::MAX as usize, "too many header fields");
        let spans_len = (2 + 2 * header_count) * SPAN_LEN;
        let mut buf = BytesMut::with_capacity(PREFIX_LEN + spans_len + 64 + header_count * 48);
        buf.put_u8(version as u8);
        buf.put_u8(0);
        buf.put_u16(header_count as u16);
        buf.put_u32(0); // raw_len, patched by finish
        buf.put_bytes(0, spans_len);
        let mut b = HeadBuilder {
            buf,
            declared: header_count,
            written: 0,
        };
        b.append_span(0, method);
        b.append_raw(b" ");
        b.append_span(1, target);
        b.append_raw(b" ");
        b.append_raw(version.as_str().as_bytes());
        b.append_raw(b"\r\n");
        b
    }

    /// Adds one header field. Fields past the declared count are ignored and reported.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        if self.written == self.declared {
            return Err(HeadError::Truncated);
        }
        let i = self.written;
        self.append_span(2 + 2 * i, name);
        self.append_raw(b": ");
        self.append_span(3 + 2 * i, value);
        self.append_raw(b"\r\n");
        self.written += 1;
        Ok(())
    }

    /// Ends the head. If fewer fields were added than declared, the span table shrinks.
    pub fn finish(mut self) -> HeadView {
        self.append_raw(b"\r\n");
        if self.written < self.declared {
            let old_raw = PREFIX_LEN + (2 + 2 * self.declared) * SPAN_LEN;
            let new_raw = PREFIX_LEN + (2 + 2 * self.written) * SPAN_LEN;
            let end = self.buf.len();
            self.buf.copy_within(old_raw..end, new_raw);
            self.buf.truncate(end - (old_raw - new_raw));
            self.buf[2..4].copy_from_slice(&(self.written as u16).to_be_bytes());
            self.declared = self.written;
        }
        let raw_len = (self.buf.len() - self.raw_start()) as u32;
        self.buf[4..8].copy_from_slice(&raw_len.to_be_bytes());
        HeadView {
            block: self.buf.freeze(),
        }
    }

    fn raw_start(&self) -> usize {
        PREFIX_LEN + (2 + 2 * self.declared) * SPAN_LEN
    }

    fn append_span(&mut self, i: usize, bytes: &[u8]) {
        let off = (self.buf.len() - self.raw_start()) as u32;
        let at = PREFIX_LEN + i * SPAN_LEN;
        self.buf[at..at + 4].copy_from_slice(&off.to_be_bytes());
        self.buf[at + 4..at + 8].copy_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    fn append_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeadView {
        let mut b = HeadBuilder::new(Version::Http11, b"POST", b"/echo?x=1", 2);
        b.header(b"host", b"example.com").unwrap();
        b.header(b"content-type", b"text/plain").unwrap();
        b.finish()
    }

    #[test]
    fn fields_slice_the_raw_text() {
        let h = sample();
        assert_eq!(h.method(), b"POST");
        assert_eq!(h.target(), b"/echo?x=1");
        assert_eq!(h.path(), b"/echo");
        assert_eq!(h.query(), Some(&b"x=1"[..]));
        assert_eq!(
            h.header(1),
            Some((&b"content-type"[..], &b"text/plain"[..]))
        );
        assert_eq!(h.header_value(b"HOST"), Some(&b"example.com"[..]));
        assert_eq!(
            h.raw(),
            b"POST /echo?x=1 HTTP/1.1\r\nhost: example.com\r\ncontent-type: text/plain\r\n\r\n"
        );
        let again = HeadView::from_block(h.as_block().clone()).unwrap();
        assert_eq!(again, h);
    }

    #[test]
    fn fewer_headers_than_declared_shrinks_the_table() {
        let mut b = HeadBuilder::new(Version::Http2, b"GET", b"/", 3);
        b.header(b"a", b"1").unwrap();
        let h = b.finish();
        assert_eq!(h.header_count(), 1);
        assert_eq!(h.header(0), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(h.raw(), b"GET / HTTP/2\r\na: 1\r\n\r\n");
        HeadView::from_block(h.as_block().clone()).unwrap();
    }

    #[test]
    fn spans_outside_the_raw_bytes_are_refused() {
        let h = sample();
        let mut block = BytesMut::from(&h.as_block()[..]);
        // Point the method span past the end of raw.
        block[8..12].copy_from_slice(&10_000u32.to_be_bytes());
        assert_eq!(
            HeadView::from_block(block.freeze()),
            Err(HeadError::SpanOutOfRange)
        );
        let short = h.as_block().slice(..h.as_block().len() - 1);
        assert_eq!(HeadView::from_block(short), Err(HeadError::Truncated));
    }
}
