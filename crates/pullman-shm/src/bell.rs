//! The wake-up protocol: a "may be asleep" word in the sleeper's memory, and an eventfd.
//!
//! A side with nothing to do first spins a little (the caller's business), then
//! [`announce_sleep`] sets the bits of what it waits for, re-checks all of it, and only then
//! blocks on its eventfd. A side that publishes something (frames, releases, consumed slots)
//! calls [`peer_needs_wake`] afterwards with the bit of what it published, and writes the
//! peer's eventfd only if that bit is set: releases and consumed slots wake only a peer that
//! is short of memory or ring space. The two `SeqCst` fences make the classic
//! store-then-load pairs meet: either the sleeper's re-check sees the publication, or the
//! publisher sees the bit. So a busy link makes no system calls and an idle one sleeps.

/// Sleeping bit: wake me for new frames (always set while asleep).
pub const WAKE_FRAMES: u32 = 1;
/// Sleeping bit: wake me for released regions (my data area is full).
pub const WAKE_RELEASES: u32 = 2;
/// Sleeping bit: wake me for consumed slots (my frame ring is full).
pub const WAKE_SLOTS: u32 = 4;

use crate::sync::{fence, AtomicU32, Ordering};

/// Sleeper: sets the bits of what it waits for. The caller must re-check all of it
/// afterwards, and block only if nothing changed.
pub fn announce_sleep(flag: &AtomicU32, bits: u32) {
    flag.store(bits, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// Sleeper: awake again; publishers may skip the eventfd.
pub fn cancel_sleep(flag: &AtomicU32) {
    flag.store(0, Ordering::SeqCst);
}

/// Publisher, after publishing what `bit` stands for: whether the peer may be blocked
/// waiting for it and needs its eventfd written. `flag` is read from the peer's memory; a
/// hostile peer can only cost us system calls.
pub fn peer_needs_wake(flag: &AtomicU32, bit: u32) -> bool {
    fence(Ordering::SeqCst);
    flag.load(Ordering::SeqCst) & bit != 0
}

#[cfg(not(loom))]
pub use eventfd::{AsyncBell, Bell};

#[cfg(not(loom))]
mod eventfd {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
    use std::task::{Context, Poll};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// An eventfd used as a doorbell: non-blocking, close-on-exec.
    #[derive(Debug)]
    pub struct Bell {
        fd: OwnedFd,
    }

    impl Bell {
        /// A new eventfd.
        pub fn new() -> io::Result<Bell> {
            // SAFETY: eventfd takes no pointers; the result is checked.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
            Ok(Bell {
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
        }

        /// A bell over a descriptor received from the peer. Reading or writing a descriptor
        /// that is not an eventfd fails with an error; it cannot hurt this process.
        pub fn from_fd(fd: OwnedFd) -> Bell {
            Bell { fd }
        }

        /// Rings: adds 1 to the counter, waking a reader blocked on it.
        pub fn ring(&self) -> io::Result<()> {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from a live local buffer.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
            if n == 8 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            // A counter at its maximum already wakes the reader.
            if err.kind() == io::ErrorKind::WouldBlock {
                Ok(())
            } else {
                Err(err)
            }
        }

        /// Resets the counter; `true` if it had been rung.
        pub fn drain(&self) -> io::Result<bool> {
            let mut buf = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a live local buffer.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            if n == 8 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                Ok(false)
            } else {
                Err(err)
            }
        }

        /// Gives the descriptor away (to send it to the peer).
        pub fn into_fd(self) -> OwnedFd {
            self.fd
        }
    }

    impl AsRawFd for Bell {
        fn as_raw_fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }
    }

    impl AsFd for Bell {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    /// A [`Bell`] registered with the tokio reactor, so that a task can wait for it to ring.
    /// Registering is `unsafe` in tokio (the descriptor must not change under the reactor);
    /// only this crate can promise that of a `Bell`, so it does it here.
    #[derive(Debug)]
    pub struct AsyncBell {
        bell: AsyncFd<Bell>,
    }

    impl AsyncBell {
        /// Registers `bell` for readability. Must be called inside a tokio runtime.
        pub fn new(bell: Bell) -> io::Result<AsyncBell> {
            // SAFETY: a `Bell` owns its eventfd in a private field that is never replaced,
            // and `as_raw_fd` always returns it; it stays open until the `AsyncFd`, the
            // bell's only owner from here on, drops it.
            let bell = unsafe { AsyncFd::register_with_interest(bell, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
            Ok(AsyncBell { bell })
        }

        /// `Ready` once the bell may have rung, its counter reset: the caller checks again
        /// whatever it waits for. `Pending` registers the task to be woken by the next ring.
        pub fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.bell.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.get_inner().drain()?;
                    guard.clear_ready();
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    #[cfg(all(test, not(miri)))]
    mod tests {
        use super::*;

        #[test]
        fn a_bell_counts_rings_until_drained() {
            let bell = Bell::new().unwrap();
            assert!(!bell.drain().unwrap());
            bell.ring().unwrap();
            bell.ring().unwrap();
            assert!(bell.drain().unwrap());
            assert!(!bell.drain().unwrap());
        }
    }
}
