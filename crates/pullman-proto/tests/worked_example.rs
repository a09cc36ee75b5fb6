//! The worked example of `docs/protocol.md` (section 17) is what the reference encoder
//! writes: its two byte streams and its table of further frames are checked here, so the
//! page cannot drift from the codec.

use bytes::{Bytes, BytesMut};
use pullman_proto::{
    encode, CancelReason, CloseCode, Frame, HeadBuilder, Hello, Mode, Modes, Request, Response,
    Version, Welcome, PREFACE, PROTOCOL_VERSION,
};

const PROTOCOL_MD: &str = include_str!("../../../docs/protocol.md");

fn bytes_of(frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for frame in frames {
        encode(frame, &mut buf, pullman_proto::DEFAULT_MAX_FRAME).unwrap();
    }
    buf.to_vec()
}

/// The hex dump in the first ```text block after the line starting with `title`.
fn hex_dump_after(title: &str) -> Vec<u8> {
    let start = PROTOCOL_MD
        .find(title)
        .unwrap_or_else(|| panic!("no {title:?} in docs/protocol.md"));
    let block = PROTOCOL_MD[start..]
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a text block");
    block
        .lines()
        .flat_map(|line| {
            // "0000  00 00 ...  |ascii|": the offset, then hex up to the ASCII column.
            let hex = line.split('|').next().unwrap_or("");
            hex.split_whitespace()
                .skip(1)
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The bytes of the row of the "A few more frames" table whose first cell is `name`.
fn table_row(name: &str) -> Vec<u8> {
    let row = PROTOCOL_MD
        .lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row {name:?}"));
    let cell = row.split('`').nth(1).expect("a bytes cell");
    cell.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

fn hello() -> Frame {
    Frame::Hello(Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        max_frame: 1 << 20,
        initial_window: 256 * 1024,
        features: 0,
        modes: Modes::RESPOND,
        pool: "demo".into(),
        token: "s3cret".into(),
        name: "w1".into(),
    })
}

#[test]
fn the_worker_to_hub_stream_is_the_encoders() {
    let mut expected = PREFACE.to_vec();
    expected.extend(bytes_of(&[
        hello(),
        Frame::Credit { n: 1 },
        Frame::Response(Response {
            stream: 1,
            end: false,
            status: 200,
            headers: vec![(
                Bytes::from_static(b"content-type"),
                Bytes::from_static(b"text/plain"),
            )],
        }),
        Frame::Body {
            stream: 1,
            data: Bytes::from_static(b"hello\n"),
            end: true,
        },
        Frame::Credit { n: 1 },
    ]));
    assert_eq!(
        hex_dump_after("The whole byte stream **worker → hub**"),
        expected
    );
}

#[test]
fn the_hub_to_worker_stream_is_the_encoders() {
    let mut head = HeadBuilder::new(Version::Http11, b"GET", b"/hello", 1);
    head.header(b"host", b"example.com").unwrap();
    let expected = bytes_of(&[
        Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            max_frame: 1 << 20,
            initial_window: 256 * 1024,
            features: 0,
            worker_id: 1,
            ping_interval_ms: 5000,
        }),
        Frame::Request(Request {
            stream: 1,
            end: true,
            deadline_ms: 30_000,
            mode: Mode::Respond,
            peer: "127.0.0.1:50000".into(),
            tls: false,
            head: head.finish(),
        }),
    ]);
    assert_eq!(
        hex_dump_after("The whole byte stream **hub → worker**"),
        expected
    );
}

#[test]
fn the_table_of_further_frames_is_the_encoders() {
    let rows = [
        ("PING opaque 42", Frame::Ping { opaque: 42 }),
        (
            "CLOSE auth_failed \"bad token\"",
            Frame::Close {
                code: CloseCode::AuthFailed,
                reason: "bad token".into(),
            },
        ),
        (
            "REJECT stream 3, RETRYABLE, \"busy\"",
            Frame::Reject {
                stream: 3,
                retryable: true,
                reason: "busy".into(),
            },
        ),
        (
            "WINDOW stream 3, +65536",
            Frame::Window {
                stream: 3,
                increment: 65536,
            },
        ),
        (
            "CANCEL stream 3, deadline",
            Frame::Cancel {
                stream: 3,
                reason: CancelReason::Deadline,
            },
        ),
        ("DRAIN last_stream 7", Frame::Drain { last_stream: 7 }),
    ];
    for (name, frame) in rows {
        assert_eq!(table_row(name), bytes_of(&[frame]), "{name}");
    }
}
