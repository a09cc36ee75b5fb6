#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets added after `decode` (whose seeds are hand
made) into fuzz/seeds/<target>/, from the layouts of docs/protocol.md.

Each seed starts with the bytes its target reads first (see the target's doc comment).
Run from anywhere; it overwrites the seeds it writes and leaves others alone:

    python3 fuzz/make_seeds.py
"""

import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
SEEDS = FUZZ / "seeds"
EXAMPLE = (FUZZ.parent / "examples" / "hub.toml").read_text()

PREFACE = b"\x89PULLMAN\r\n\x1a\n"


def frame(kind, payload, flags=0, stream=0):
    """A frame: length u32, type u8, flags u8, stream u64, payload (big-endian)."""
    return struct.pack(">IBBQ", len(payload), kind, flags, stream) + payload


def string(text):
    """A string field: its length as a u16, then its bytes."""
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def hello(pool="demo", token="change-me", name="worker-1", features=0, modes=1):
    payload = struct.pack(">HHIIIB", 2, 2, 1024 * 1024, 256 * 1024, features, modes)
    return frame(0x01, payload + string(pool) + string(token) + string(name))


def welcome():
    return frame(0x02, struct.pack(">HIIIQI", 2, 1024 * 1024, 256 * 1024, 0, 7, 5000))


def close(code, reason):
    return frame(0x0E, struct.pack(">H", code) + string(reason))


def head_block(method, target, fields, version=1):
    """A head block: version, reserved, header count, raw_len, spans, raw text."""
    raw = b""
    spans = []

    def span(data):
        nonlocal raw
        spans.append((len(raw), len(data)))
        raw += data

    names = {0: b"HTTP/1.0", 1: b"HTTP/1.1", 2: b"HTTP/2", 3: b"HTTP/3"}
    span(method)
    raw += b" "
    span(target)
    raw += b" " + names[version] + b"\r\n"
    for name, value in fields:
        span(name)
        raw += b": "
        span(value)
        raw += b"\r\n"
    raw += b"\r\n"
    table = b"".join(struct.pack(">II", offset, length) for offset, length in spans)
    return struct.pack(">BBHI", version, 0, len(fields), len(raw)) + table + raw


# The shm target's opcodes, in the order of its `STEPS`.
(DESCRIPTOR, NEXT_DESCRIPTOR, PUBLISH_NEAR, PUBLISH_ANY, RELEASE, PUBLISH_RELEASES_NEAR,
 PUBLISH_RELEASES_ANY, CONSUME_ANY, CONSUME_ALL, CONSUME_RELEASES_ANY, SLEEPING, DATA,
 RECEIVE, SEND, RECLAIM, SLEEP) = range(16)


def next_descriptor(kind, flags, stream, length, offset_units=0):
    return struct.pack("<BBBBHH", NEXT_DESCRIPTOR, kind, flags, stream, length, offset_units)


def data(offset_units, payload):
    return struct.pack("<BHB", DATA, offset_units, len(payload)) + payload


def send(kind, length):
    return struct.pack("<BBH", SEND, kind, length)


def release(slot, index):
    return struct.pack("<BHQ", RELEASE, slot, index)


def seeds():
    request_head = head_block(
        b"POST", b"/echo?x=1", [(b"host", b"example.com"), (b"content-type", b"text/plain")]
    )
    yield "handshake", {
        "hello": b"\x00" + PREFACE + hello(),
        "hello-shm-filter": b"\x00" + PREFACE + hello(features=1, modes=0b1110),
        "hello-version-1": b"\x00" + hello(),
        "http-client": b"\x00GET / HTTP/1.1\r\nhost: localhost\r\n\r\n",
        "h2-client": b"\x00PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "welcome": b"\x01" + welcome(),
        "close-unknown-pool": b"\x01" + close(4, 'no pool named "x"'),
        "http-server": b"\x01HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
    }
    yield "head", {
        "block-post": b"\x00" + request_head,
        "block-h2-no-fields": b"\x00" + head_block(b"GET", b"/", [], version=2),
        "block-repeated-field": b"\x00"
        + head_block(b"GET", b"/a", [(b"Cookie", b"a=1"), (b"cookie", b"b=2")]),
        "fields-get": b"\x01\x01GET\x00/search?q=pullman\x00host\x00example.com\x00accept\x00*/*",
        "fields-shrinking": b"\x01\x0dPUT\x00/upload\x00content-length\x003",
    }
    yield "shm", {
        # CREDIT 1, inline, received.
        "inline-frame": next_descriptor(0x03, 0, 0, 4) + bytes([PUBLISH_NEAR, 1, RECEIVE]),
        # A REQUEST-sized payload in the data area, received.
        "data-frame": data(2, b"\x00" * 8 + bytes(range(40)))
        + next_descriptor(0x05, 1, 1, 48, 2)
        + bytes([PUBLISH_NEAR, 1, RECEIVE]),
        # The hub sends a body in a region; the worker consumes it and releases it.
        "send-release-reclaim": send(0x05, 1000)
        + bytes([CONSUME_ALL])
        + release(0, 0)
        + bytes([PUBLISH_RELEASES_NEAR, 1, RECLAIM]),
        # A sleeping worker, rung by the hub's frames; the hub sleeps with nothing to do.
        "sleepy-peer": bytes([SLEEPING, 1]) + send(0x0B, 8) + bytes([SLEEP, RECEIVE]),
        # A producer index far ahead of the ring: refused.
        "index-ahead": struct.pack("<BQ", PUBLISH_ANY, 5000) + bytes([RECEIVE]),
    }
    yield "config", {
        "example": EXAMPLE.encode(),
        "minimal": b'[hub]\nlisten = "127.0.0.1:8080"\nworkers_listen = ["tcp://127.0.0.1:7070"]\n'
        b'[[pool]]\nname = "demo"\ntoken = "s3cret"\n[[route]]\npool = "demo"\n',
        "ptth-and-filter": b'[hub]\nlisten = "127.0.0.1:0"\n'
        b'workers_listen = ["ptth://127.0.0.1:0?pool=p", "unix:///tmp/w.sock"]\n'
        b'[[pool]]\nname = "p"\ntoken = { env = "HOME" }\n'
        b'[[pool]]\nname = "f"\ntoken = "t"\nmode = "filter"\nupstream = "http://127.0.0.1:9000"\n'
        b'[[route]]\nname = "r"\npool = "p"\nhost = "*.example.com"\nmethod = ["GET"]\n',
        "refused-unknown-key": b'[hub]\nlisten = "127.0.0.1:8080"\nlisen = 1\n',
    }
    yield "admin_json", {
        "pool-replace": b"\x00demo\x00" + b'{"queue_limit": 7, "timeout": "5s"}',
        "pool-new": b"\x00fresh\x00" + b'{"token": "t", "mode": "respond"}',
        "route-first": b"\x01front\x00"
        + b'{"pool": "demo", "path_prefix": "/f/", "method": ["GET", "HEAD"], "position": 0}',
        "route-host": b"\x01uploads\x00" + b'{"pool": "render", "host": "*.example.com"}',
        "program": b"\x02render-workers\x00"
        + b'{"pool": "render", "command": ["pullman", "worker"], "instances": 3}',
        "refused-null": b"\x00demo\x00" + b'{"token": null}',
    }
    yield "http1_response", {
        "length": b"\x00HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello",
        "chunked": b"\x06HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
        "continue-then-no-content": b"\x02HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "close-delimited-1.0": b"\x10HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\nuntil the end",
        "head-request": b"\x01HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
        "smuggling-both": b"\x00HTTP/1.1 200 OK\r\ncontent-length: 3\r\n"
        b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "next-response-behind": b"\x08HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        # A chunk-size line of exactly the codec's MAX_LINE (4096) bytes, read a byte at a
        # time: once refused when its CR ended a read.
        "chunk-line-at-limit": b"\x00HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        + (b"2;" + b"x" * 4094)
        + b"\r\nok\r\n0\r\n\r\n",
    }


def main():
    for target, files in seeds():
        folder = SEEDS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (folder / name).write_bytes(content)
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()
