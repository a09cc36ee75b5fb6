//! Every entry point, called the ways a C caller gets wrong: a null handle, a handle that is
//! not one (freed, made up, of the other kind), null out-pointers, bad values, calls out
//! of order. Each must return its code and a message, never crash.

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use bytes::Bytes;
use pullman_proto::{HeadBuilder, Version};
use pullman_worker::pull::{self, Reply};
use pullman_worker::{RequestBody, RequestInfo};

use crate::error::{pm_code_name, pm_last_error_message, PmCode};
use crate::request::*;
use crate::worker::*;

fn last_error() -> String {
    unsafe { CStr::from_ptr(pm_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts `code` and that the failure left a message.
fn expect(code: PmCode, want: PmCode, call: &str) {
    assert_eq!(code, want, "{call}: {}", last_error());
    if want != PmCode::Ok {
        assert!(!last_error().is_empty(), "{call} left no message");
    }
}

unsafe extern "C" fn open_gate(_: *mut c_void) -> bool {
    true
}

unsafe extern "C" fn no_handler(_: *mut PmRequest, _: *mut c_void) {}

/// Calls every worker function with `w`, which is not a live worker, and expects `want`.
unsafe fn every_worker_call(w: *mut PmWorker, want: PmCode) {
    let s = c"x".as_ptr();
    let mut req = null_mut();
    let calls: [(&str, PmCode); 16] = unsafe {
        [
            (
                "set_hub",
                pm_worker_set_hub(w, c"tcp://127.0.0.1:1".as_ptr()),
            ),
            ("set_pool", pm_worker_set_pool(w, s)),
            ("set_token", pm_worker_set_token(w, s)),
            ("set_name", pm_worker_set_name(w, s)),
            ("set_concurrency", pm_worker_set_concurrency(w, 1)),
            ("set_shm", pm_worker_set_shm(w, true)),
            (
                "add_gate",
                pm_worker_add_gate(w, Some(open_gate), null_mut()),
            ),
            ("add_cpu_gate", pm_worker_add_cpu_gate(w, 0.5)),
            ("add_memory_gate", pm_worker_add_memory_gate(w, 1)),
            (
                "set_redirect",
                pm_worker_set_redirect(w, 0, null(), 0, 1000),
            ),
            ("set_tls", pm_worker_set_tls(w, null(), null(), null())),
            ("connect", pm_worker_connect(w, PmMode::Respond as u32)),
            ("next", pm_worker_next(w, 0, &mut req)),
            ("run", pm_worker_run(w, Some(no_handler), null_mut())),
            ("drain", pm_worker_drain(w)),
            ("free", pm_worker_free(w)),
        ]
    };
    for (call, code) in calls {
        expect(code, want, call);
    }
    assert!(req.is_null(), "next wrote a request");
}

/// Calls every request function with `r`, which is not a live request, and expects `want`.
unsafe fn every_request_call(r: *mut PmRequest, want: PmCode) {
    let mut b = PmBytes {
        ptr: null(),
        len: 0,
    };
    let mut b2 = b;
    let (mut n, mut ms, mut shm) = (0usize, 0u32, false);
    let name = c"x-a".as_ptr();
    let mut tls = false;
    let calls: [(&str, PmCode); 22] = unsafe {
        [
            ("method", pm_request_method(r, &mut b)),
            ("target", pm_request_target(r, &mut b)),
            ("path", pm_request_path(r, &mut b)),
            ("query", pm_request_query(r, &mut b)),
            ("peer", pm_request_peer(r, &mut b)),
            ("id", pm_request_id(r, &mut b)),
            ("deadline_ms", pm_request_deadline_ms(r, &mut ms)),
            ("tls", pm_request_tls(r, &mut tls)),
            ("in_shared_memory", pm_request_in_shared_memory(r, &mut shm)),
            ("header_count", pm_request_header_count(r, &mut n)),
            ("header_at", pm_request_header_at(r, 0, &mut b, &mut b2)),
            ("header", pm_request_header(r, name, 3, &mut b)),
            ("read", pm_request_read(r, &mut b)),
            ("add_header", pm_request_add_header(r, name, 3, name, 3)),
            ("respond", pm_request_respond(r, 200, null(), 0)),
            ("start", pm_request_start(r, 200)),
            ("write", pm_request_write(r, b"x".as_ptr(), 1)),
            ("finish", pm_request_finish(r)),
            (
                "edit",
                pm_request_edit(r, PmEdit::Set as u32, name, 3, name, 3),
            ),
            ("set_target", pm_request_set_target(r, c"/".as_ptr(), 1)),
            ("pass", pm_request_pass(r)),
            ("free", pm_request_free(r)),
        ]
    };
    for (call, code) in calls {
        expect(code, want, call);
    }
}

#[test]
fn null_and_wrong_handles_are_refused_by_every_entry_point() {
    unsafe {
        every_worker_call(null_mut(), PmCode::NullArgument);
        every_request_call(null_mut(), PmCode::NullArgument);

        // Freed.
        let mut w = null_mut();
        expect(pm_worker_new(&mut w), PmCode::Ok, "new");
        expect(pm_worker_free(w), PmCode::Ok, "free");
        every_worker_call(w, PmCode::BadHandle);
        let (r, _answer) = request(PmMode::Respond, head(&[]), RequestBody::empty());
        expect(pm_request_free(r), PmCode::Ok, "free");
        every_request_call(r, PmCode::BadHandle);

        // Never made by the library: memory of the caller's, and a made-up address.
        let mut fake = [0u64; 64];
        every_worker_call(fake.as_mut_ptr().cast(), PmCode::BadHandle);
        every_request_call(fake.as_mut_ptr().cast(), PmCode::BadHandle);
        every_worker_call(0x10 as *mut PmWorker, PmCode::BadHandle);
        every_request_call(0x10 as *mut PmRequest, PmCode::BadHandle);

        // A live handle of the other kind.
        let mut w = null_mut();
        expect(pm_worker_new(&mut w), PmCode::Ok, "new");
        let (r, _answer) = request(PmMode::Respond, head(&[]), RequestBody::empty());
        every_request_call(w.cast(), PmCode::BadHandle);
        every_worker_call(r.cast(), PmCode::BadHandle);
        expect(pm_worker_free(w), PmCode::Ok, "free");
        expect(pm_request_free(r), PmCode::Ok, "free");

        expect(pm_worker_new(null_mut()), PmCode::NullArgument, "new");
    }
}

#[test]
fn a_live_worker_refuses_null_and_bad_arguments() {
    unsafe {
        let mut w = null_mut();
        expect(pm_worker_new(&mut w), PmCode::Ok, "new");
        expect(
            pm_worker_set_hub(w, null()),
            PmCode::NullArgument,
            "set_hub",
        );
        expect(
            pm_worker_set_pool(w, null()),
            PmCode::NullArgument,
            "set_pool",
        );
        expect(
            pm_worker_set_token(w, null()),
            PmCode::NullArgument,
            "set_token",
        );
        expect(
            pm_worker_set_name(w, null()),
            PmCode::NullArgument,
            "set_name",
        );
        expect(
            pm_worker_add_gate(w, None, null_mut()),
            PmCode::NullArgument,
            "gate",
        );
        let mut req = null_mut();
        expect(
            pm_worker_next(w, 0, null_mut()),
            PmCode::NullArgument,
            "next",
        );
        expect(
            pm_worker_run(w, None, null_mut()),
            PmCode::NullArgument,
            "run",
        );

        let bad_hubs = [c"http://127.0.0.1:1", c"tcp://", c"unix://", c""];
        for hub in bad_hubs {
            let code = pm_worker_set_hub(w, hub.as_ptr());
            expect(code, PmCode::InvalidArgument, &format!("{hub:?}"));
        }
        let not_utf8 = [0xffu8, 0xfe, 0];
        let code = pm_worker_set_pool(w, not_utf8.as_ptr().cast());
        expect(code, PmCode::InvalidArgument, "set_pool");
        expect(
            pm_worker_set_concurrency(w, 0),
            PmCode::InvalidArgument,
            "concurrency 0",
        );
        expect(
            pm_worker_add_cpu_gate(w, 1.5),
            PmCode::InvalidArgument,
            "cpu gate",
        );
        expect(pm_worker_connect(w, 7), PmCode::InvalidArgument, "mode 7");

        // Out of order: before connect.
        expect(pm_worker_next(w, 0, &mut req), PmCode::WrongState, "next");
        expect(
            pm_worker_run(w, Some(no_handler), null_mut()),
            PmCode::WrongState,
            "run",
        );
        expect(pm_worker_drain(w), PmCode::WrongState, "drain");

        // Redirect mode's settings are checked at connect, on a worker of their own.
        let mut r = null_mut();
        expect(pm_worker_new(&mut r), PmCode::Ok, "new");
        expect(
            pm_worker_set_hub(r, c"unix:///tmp/pullman-none.sock".as_ptr()),
            PmCode::Ok,
            "hub",
        );
        expect(
            pm_worker_set_redirect(r, 0, null(), 0, 20_000),
            PmCode::Ok,
            "redirect",
        );
        expect(
            pm_worker_connect(r, 0),
            PmCode::InvalidArgument,
            "a unix hub gives no host",
        );
        assert!(last_error().contains("redirect host"), "{}", last_error());
        let host = c"worker.example".as_ptr();
        expect(
            pm_worker_set_redirect(r, 0, host, 0, 0),
            PmCode::Ok,
            "redirect",
        );
        expect(pm_worker_connect(r, 0), PmCode::InvalidArgument, "expiry 0");
        assert!(last_error().contains("expiry"), "{}", last_error());
        expect(
            pm_worker_set_redirect(r, 0, not_utf8.as_ptr().cast(), 0, 1),
            PmCode::InvalidArgument,
            "host not UTF-8",
        );
        expect(pm_worker_free(r), PmCode::Ok, "free");

        // TLS settings: a certificate needs its key; they need a tls:// hub; a CA file that
        // cannot be read fails the connect with its path.
        let mut t = null_mut();
        expect(pm_worker_new(&mut t), PmCode::Ok, "new");
        let (pool, token) = (c"p".as_ptr(), c"t".as_ptr());
        expect(pm_worker_set_pool(t, pool), PmCode::Ok, "pool");
        expect(pm_worker_set_token(t, token), PmCode::Ok, "token");
        expect(
            pm_worker_set_tls(t, null(), c"/w.pem".as_ptr(), null()),
            PmCode::InvalidArgument,
            "a certificate without its key",
        );
        assert!(
            last_error().contains("both cert and key"),
            "{}",
            last_error()
        );
        let missing = c"/nonexistent/pullman-ca.pem".as_ptr();
        expect(
            pm_worker_set_tls(t, missing, null(), null()),
            PmCode::Ok,
            "tls",
        );
        expect(
            pm_worker_set_hub(t, c"tcp://127.0.0.1:9".as_ptr()),
            PmCode::Ok,
            "hub",
        );
        expect(
            pm_worker_connect(t, 0),
            PmCode::InvalidArgument,
            "tls on tcp",
        );
        assert!(
            last_error().contains("need a tls:// hub"),
            "{}",
            last_error()
        );
        expect(
            pm_worker_set_hub(t, c"tls://localhost:9".as_ptr()),
            PmCode::Ok,
            "hub",
        );
        expect(
            pm_worker_connect(t, 0),
            PmCode::InvalidArgument,
            "no CA file",
        );
        assert!(last_error().contains("pullman-ca.pem"), "{}", last_error());
        expect(pm_worker_free(t), PmCode::Ok, "free");

        // Shared memory needs a Unix hub: refused at connect, and the worker stays usable.
        expect(
            pm_worker_set_hub(w, c"tcp://127.0.0.1:9".as_ptr()),
            PmCode::Ok,
            "hub",
        );
        expect(pm_worker_set_pool(w, c"p".as_ptr()), PmCode::Ok, "pool");
        expect(pm_worker_set_token(w, c"t".as_ptr()), PmCode::Ok, "token");
        expect(pm_worker_set_shm(w, true), PmCode::Ok, "shm");
        expect(
            pm_worker_connect(w, 0),
            PmCode::InvalidArgument,
            "shm over tcp",
        );
        assert!(last_error().contains("unix://"), "{}", last_error());

        // Connected (to a port where nothing listens, so it keeps dialing).
        expect(pm_worker_set_shm(w, false), PmCode::Ok, "shm");
        expect(pm_worker_connect(w, 0), PmCode::Ok, "connect");
        expect(pm_worker_connect(w, 0), PmCode::WrongState, "connect again");
        expect(
            pm_worker_set_pool(w, c"q".as_ptr()),
            PmCode::WrongState,
            "late setting",
        );
        expect(pm_worker_next(w, 10, &mut req), PmCode::Timeout, "next");
        expect(pm_worker_drain(w), PmCode::Ok, "drain");
        expect(pm_worker_drain(w), PmCode::Ok, "drain again");
        expect(pm_worker_next(w, -1, &mut req), PmCode::Drained, "next");
        let code = pm_worker_run(w, Some(no_handler), null_mut());
        expect(code, PmCode::Ok, "run on a drained worker returns at once");
        expect(pm_worker_free(w), PmCode::Ok, "free");
        assert!(req.is_null());
    }
}

#[test]
fn codes_have_names_and_any_number_is_safe() {
    let name = |code| {
        unsafe { CStr::from_ptr(pm_code_name(code)) }
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(name(0), "PM_CODE_OK");
    assert_eq!(name(PmCode::Closed as i32), "PM_CODE_CLOSED");
    assert_eq!(name(-1), "unknown code");
    assert_eq!(name(11), "unknown code");
}

fn head(headers: &[(&str, &str)]) -> RequestInfo {
    let mut b = HeadBuilder::new(Version::Http11, b"POST", b"/a/b?x=1", headers.len());
    for (name, value) in headers {
        b.header(name.as_bytes(), value.as_bytes()).unwrap();
    }
    RequestInfo {
        peer: "127.0.0.1:5555".into(),
        tls: false,
        deadline_ms: 250,
        head: b.finish(),
    }
}

/// A request handle as `pm_worker_next` makes it, on a worker with no link, and the
/// receiver of its answer.
fn request(
    mode: PmMode,
    info: RequestInfo,
    body: RequestBody,
) -> (*mut PmRequest, tokio::sync::oneshot::Receiver<Reply>) {
    let (pulled, answer) = pull::unlinked(mode.into(), info, body).unwrap();
    (
        crate::handle::REQUESTS.insert(PmRequest::new(pulled, false)),
        answer,
    )
}

fn text(b: PmBytes) -> String {
    if b.len == 0 {
        return String::new();
    }
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(b.ptr, b.len) }).into_owned()
}

#[test]
fn a_live_request_shows_its_head_and_refuses_null_and_bad_arguments() {
    unsafe {
        let info = head(&[("Host", "h"), ("X-Request-Id", "abc"), ("x-a", "1")]);
        let (r, answer) = request(PmMode::Respond, info, RequestBody::empty());
        let mut b = PmBytes {
            ptr: null(),
            len: 0,
        };
        let mut v = b;
        expect(pm_request_method(r, &mut b), PmCode::Ok, "method");
        assert_eq!(text(b), "POST");
        expect(pm_request_target(r, &mut b), PmCode::Ok, "target");
        assert_eq!(text(b), "/a/b?x=1");
        expect(pm_request_path(r, &mut b), PmCode::Ok, "path");
        assert_eq!(text(b), "/a/b");
        expect(pm_request_query(r, &mut b), PmCode::Ok, "query");
        assert_eq!(text(b), "x=1");
        expect(pm_request_peer(r, &mut b), PmCode::Ok, "peer");
        assert_eq!(text(b), "127.0.0.1:5555");
        expect(pm_request_id(r, &mut b), PmCode::Ok, "id");
        assert_eq!(text(b), "abc");
        let mut n = 0;
        expect(pm_request_header_count(r, &mut n), PmCode::Ok, "count");
        assert_eq!(n, 3);
        expect(pm_request_header_at(r, 2, &mut b, &mut v), PmCode::Ok, "at");
        assert_eq!((text(b), text(v)), ("x-a".into(), "1".into()));
        expect(
            pm_request_header_at(r, 3, &mut b, &mut v),
            PmCode::NotFound,
            "at 3",
        );
        expect(
            pm_request_header(r, c"HOST".as_ptr(), 4, &mut b),
            PmCode::Ok,
            "header",
        );
        assert_eq!(text(b), "h");
        let code = pm_request_header(r, c"x-b".as_ptr(), 3, &mut b);
        expect(code, PmCode::NotFound, "no such header");
        let mut ms = 0;
        expect(pm_request_deadline_ms(r, &mut ms), PmCode::Ok, "deadline");
        assert_eq!(ms, 250);
        let mut tls = true;
        expect(pm_request_tls(r, &mut tls), PmCode::Ok, "tls");
        assert!(!tls, "a request made with tls: false");
        let mut shm = true;
        expect(pm_request_in_shared_memory(r, &mut shm), PmCode::Ok, "shm");
        assert!(!shm);

        // Null out-pointers and arguments.
        for (call, code) in [
            ("method", pm_request_method(r, null_mut())),
            ("target", pm_request_target(r, null_mut())),
            ("path", pm_request_path(r, null_mut())),
            ("query", pm_request_query(r, null_mut())),
            ("peer", pm_request_peer(r, null_mut())),
            ("id", pm_request_id(r, null_mut())),
            ("deadline", pm_request_deadline_ms(r, null_mut())),
            ("tls", pm_request_tls(r, null_mut())),
            ("shm", pm_request_in_shared_memory(r, null_mut())),
            ("count", pm_request_header_count(r, null_mut())),
            ("at", pm_request_header_at(r, 0, null_mut(), &mut v)),
            ("at", pm_request_header_at(r, 0, &mut b, null_mut())),
            ("header", pm_request_header(r, null(), 3, &mut b)),
            (
                "header",
                pm_request_header(r, c"x-a".as_ptr(), 3, null_mut()),
            ),
            ("read", pm_request_read(r, null_mut())),
            (
                "add_header",
                pm_request_add_header(r, null(), 1, c"v".as_ptr(), 1),
            ),
            (
                "add_header",
                pm_request_add_header(r, c"n".as_ptr(), 1, null(), 1),
            ),
            ("respond", pm_request_respond(r, 200, null(), 5)),
            ("write", pm_request_write(r, null(), 5)),
            ("edit", pm_request_edit(r, 0, null(), 1, c"v".as_ptr(), 1)),
            ("set_target", pm_request_set_target(r, null(), 1)),
        ] {
            expect(code, PmCode::NullArgument, call);
        }

        // Bad values.
        let code = pm_request_add_header(r, c"bad name".as_ptr(), 8, c"v".as_ptr(), 1);
        expect(code, PmCode::InvalidArgument, "header name with a space");
        let code = pm_request_add_header(r, c"n".as_ptr(), 1, c"a\nb".as_ptr(), 3);
        expect(code, PmCode::InvalidArgument, "header value with a newline");
        expect(
            pm_request_respond(r, 42, null(), 0),
            PmCode::InvalidArgument,
            "status 42",
        );
        expect(
            pm_request_start(r, 1000),
            PmCode::InvalidArgument,
            "status 1000",
        );
        let code = pm_request_edit(r, 9, c"n".as_ptr(), 1, c"v".as_ptr(), 1);
        expect(code, PmCode::InvalidArgument, "edit op 9");
        let code = pm_request_set_target(r, c"no-slash".as_ptr(), 8);
        expect(code, PmCode::InvalidArgument, "target without /");

        // Out of order.
        expect(
            pm_request_write(r, b"x".as_ptr(), 1),
            PmCode::WrongState,
            "write first",
        );
        expect(pm_request_finish(r), PmCode::WrongState, "finish first");
        expect(
            pm_request_pass(r),
            PmCode::WrongState,
            "pass in a respond pool",
        );

        // The empty body ends at once; then one answer, and no second.
        expect(pm_request_read(r, &mut b), PmCode::Ok, "read");
        assert_eq!(b.len, 0);
        let code = pm_request_add_header(r, c"X-B".as_ptr(), 3, c"2".as_ptr(), 1);
        expect(code, PmCode::Ok, "add_header");
        expect(
            pm_request_respond(r, 201, b"made".as_ptr(), 4),
            PmCode::Ok,
            "respond",
        );
        expect(
            pm_request_respond(r, 200, null(), 0),
            PmCode::WrongState,
            "again",
        );
        expect(pm_request_start(r, 200), PmCode::WrongState, "start after");
        let code = pm_request_add_header(r, c"x-c".as_ptr(), 3, c"3".as_ptr(), 1);
        expect(code, PmCode::WrongState, "header after the answer");
        expect(pm_request_free(r), PmCode::Ok, "free");

        let Ok(Reply::Respond(resp)) = answer.blocking_recv() else {
            panic!("no response reached the SDK");
        };
        assert_eq!(resp.status, 201);
        let fields = [(Bytes::from("x-b"), Bytes::from("2"))];
        assert_eq!(
            resp.headers, fields,
            "in the frame's form: the name lowercase"
        );
    }
}

#[test]
fn a_request_freed_unanswered_or_cancelled_says_so() {
    unsafe {
        let (r, answer) = request(PmMode::Respond, head(&[]), RequestBody::empty());
        expect(pm_request_free(r), PmCode::Ok, "free");
        assert!(
            answer.blocking_recv().is_err(),
            "the SDK side learns of no answer"
        );

        let (r, answer) = request(PmMode::Filter, head(&[]), RequestBody::empty());
        drop(answer);
        expect(
            pm_request_pass(r),
            PmCode::Closed,
            "pass after the hub cancelled",
        );
        expect(pm_request_free(r), PmCode::Ok, "free");
    }
}

#[test]
fn a_filter_request_passes_with_its_edits_and_target() {
    unsafe {
        let (r, answer) = request(PmMode::Filter, head(&[]), RequestBody::empty());
        let code = pm_request_edit(r, PmEdit::Set as u32, c"x-a".as_ptr(), 3, c"1".as_ptr(), 1);
        expect(code, PmCode::Ok, "edit");
        let code = pm_request_edit(r, PmEdit::Remove as u32, c"cookie".as_ptr(), 6, null(), 0);
        expect(code, PmCode::Ok, "remove");
        expect(
            pm_request_set_target(r, c"/v2".as_ptr(), 3),
            PmCode::Ok,
            "target",
        );
        expect(pm_request_pass(r), PmCode::Ok, "pass");
        expect(pm_request_pass(r), PmCode::WrongState, "pass again");
        expect(pm_request_free(r), PmCode::Ok, "free");
        let Ok(Reply::Pass(pass, body)) = answer.blocking_recv() else {
            panic!("no pass reached the SDK");
        };
        let shown = format!("{pass:?}");
        assert!(shown.contains("x-a") && shown.contains("cookie") && shown.contains("/v2"));
        assert!(body.is_some(), "an unread body goes on with the pass");
    }
}

#[test]
fn bytes_views_point_into_the_request() {
    let info = head(&[("x-a", "1")]);
    let block: Bytes = info.head.as_block().clone();
    let (r, _answer) = request(PmMode::Respond, info, RequestBody::empty());
    let mut b = PmBytes {
        ptr: null(),
        len: 0,
    };
    unsafe {
        expect(pm_request_method(r, &mut b), PmCode::Ok, "method");
        let inside = block.as_ptr_range().contains(&b.ptr);
        assert!(inside, "the method was copied, not viewed in place");
        expect(pm_request_free(r), PmCode::Ok, "free");
    }
}
