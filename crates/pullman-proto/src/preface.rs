//! The connection preface: fixed bytes a worker sends before HELLO, so that each end can tell
//! at once whether the peer speaks pullman, HTTP, or an older pullman without a preface.
//!
//! A worker dialing an HTTP server, or an HTTP client dialing a worker port, is a
//! configuration mistake: both ends should say so in one line, not fail on a frame header
//! made of text.

/// What a worker sends first on every link, before HELLO (as HTTP/2 clients send
/// `PRI * HTTP/2.0...`). Built like PNG's signature:
///
/// - `0x89` first: not ASCII, so no HTTP/1 server reads a method from it (it answers 400),
///   and not `0x00` or `0x01`, the first byte of every frame header (a length of at most
///   16 MiB), so a frame without the preface is told from it by its first byte;
/// - `PULLMAN` for people reading a packet capture;
/// - `\r\n`, `0x1a`, `\n`: a transport that rewrites line ends or stops at `^Z` breaks it.
pub const PREFACE: &[u8; 12] = b"\x89PULLMAN\r\n\x1a\n";

/// Longest method an HTTP request line may start with here before the bytes count as
/// garbage instead; the longest registered method names have 17 letters.
const MAX_METHOD_LEN: usize = 24;

/// What the first bytes of a connection to a worker port are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Too few bytes yet to tell.
    Incomplete,
    /// The connection preface: a worker of this protocol.
    Preface,
    /// An HTTP request line (`GET /...`, or HTTP/2's `PRI * ...`): an HTTP client.
    Http,
    /// A HELLO frame without a preface: a worker of protocol version 1.
    HelloWithoutPreface,
    /// Anything else.
    Unknown,
}

/// Tells from the first bytes of a connection what dialed a worker port. Decides as soon as
/// the bytes allow: a mismatch with [`PREFACE`] shows in the first byte for every kind of
/// peer this knows.
pub fn classify(bytes: &[u8]) -> Opening {
    let n = bytes.len().min(PREFACE.len());
    if bytes[..n] == PREFACE[..n] {
        return if n == PREFACE.len() {
            Opening::Preface
        } else {
            Opening::Incomplete
        };
    }
    match bytes[0] {
        b'A'..=b'Z' => {
            // An HTTP method (upper-case letters by convention) and a space.
            match bytes.iter().position(|&b| !b.is_ascii_uppercase()) {
                Some(i) if i <= MAX_METHOD_LEN && bytes[i] == b' ' => Opening::Http,
                None if bytes.len() <= MAX_METHOD_LEN => Opening::Incomplete,
                _ => Opening::Unknown,
            }
        }
        // A frame header: length, then type HELLO, then stream 0.
        0x00 | 0x01 if bytes.len() < crate::FRAME_HEADER_LEN => Opening::Incomplete,
        0x00 | 0x01 if bytes[4] == 0x01 && bytes[6..14].iter().all(|&b| b == 0) => {
            Opening::HelloWithoutPreface
        }
        _ => Opening::Unknown,
    }
}

/// Whether `bytes`, read where a frame was expected, start an HTTP response (`HTTP/1.1 400
/// Bad Request`, say): the peer is an HTTP server that took the preface for a bad request.
pub fn is_http_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_recognised_byte_by_byte() {
        for n in 1..PREFACE.len() {
            assert_eq!(classify(&PREFACE[..n]), Opening::Incomplete, "{n} bytes");
        }
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(b"\x00\x00\x00\x22\x01");
        assert_eq!(classify(&more), Opening::Preface);
    }

    #[test]
    fn http_requests_are_told_apart_from_the_preface() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Opening::Http);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Opening::Http);
        assert_eq!(classify(b"POS"), Opening::Incomplete);
        assert_eq!(
            classify(b"GETTING-LONGER-THAN-ANY-METHOD"),
            Opening::Unknown
        );
        assert_eq!(classify(b"Get / HTTP/1.1\r\n"), Opening::Unknown);
    }

    #[test]
    fn a_hello_without_preface_is_a_version_1_worker() {
        let mut hello = vec![0, 0, 0, 0x22, 0x01, 0];
        assert_eq!(classify(&hello), Opening::Incomplete);
        hello.extend_from_slice(&[0; 8]);
        assert_eq!(classify(&hello), Opening::HelloWithoutPreface);
        hello[13] = 7;
        assert_eq!(classify(&hello), Opening::Unknown);
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Opening::Unknown);
    }

    #[test]
    fn an_http_response_is_recognised() {
        assert!(is_http_response(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(!is_http_response(b"\x00\x00\x00\x1a\x02"));
    }
}
