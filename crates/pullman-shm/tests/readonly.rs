//! The worker's copy of the request arena is read-only by the kernel's rules, not by
//! convention: mapping it writable fails, and writing through its mapping kills the writer.
#![cfg(not(miri))]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use pullman_shm::layout::ARENA_LEN;

fn map_writable(fd: i32) -> std::io::Error {
    // SAFETY: a fresh mapping request; on the (unexpected) success it is unmapped at once.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ARENA_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p != libc::MAP_FAILED {
        unsafe { libc::munmap(p, ARENA_LEN) };
        panic!("a writable mapping of the request arena succeeded");
    }
    std::io::Error::last_os_error()
}

#[test]
fn the_request_arena_cannot_be_mapped_writable() {
    let (_hub, _bell, fds) = pullman_shm::create().unwrap();
    let request_arena = &fds[0];
    let err = map_writable(request_arena.as_raw_fd());
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

    // Reopening it read-write through /proc does not help: the arena is sealed against
    // any new writable mapping.
    let path = CString::new(format!("/proc/self/fd/{}", request_arena.as_raw_fd())).unwrap();
    let rw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if rw >= 0 {
        let rw = unsafe { OwnedFd::from_raw_fd(rw) };
        let err = map_writable(rw.as_raw_fd());
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }
    // Nor does write(2).
    let n = unsafe { libc::pwrite(request_arena.as_raw_fd(), b"x".as_ptr().cast(), 1, 0) };
    assert_eq!(n, -1);
}

#[test]
fn a_worker_writing_into_the_request_arena_dies_of_sigsegv() {
    let (_hub, _hub_bell, fds) = pullman_shm::create().unwrap();
    let (worker, _worker_bell) = pullman_shm::open(fds.into()).unwrap();
    let (arena, len) = worker.peer_mapping();
    assert_eq!(len, ARENA_LEN);
    // SAFETY: the child only writes one byte and exits; it allocates nothing.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: a worker trying to change what the hub wrote.
        unsafe {
            std::ptr::write_volatile(arena.cast_mut().add(pullman_shm::layout::OFF_DATA), 0xff);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "child status {status:#x}: the write was not refused"
    );
    // And the byte is unchanged.
    assert_eq!(
        unsafe { std::ptr::read_volatile(arena.add(pullman_shm::layout::OFF_DATA)) },
        0
    );
}
