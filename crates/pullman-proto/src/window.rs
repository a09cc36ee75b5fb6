//! Per-stream flow control, as numbers: how many body bytes one side may still send.
//!
//! The receiver of a body grants a window (the initial window from the handshake, then
//! WINDOW increments as its consumer takes bytes); the sender spends it with every BODY
//! frame. A sender that spends more than it was granted breaks the protocol.

/// A flow-control window, from the point of view of the side that receives the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    available: u64,
}

/// A peer sent more body bytes than it was allowed, or granted an absurd window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// More bytes arrived than the window allowed.
    #[error("peer sent {sent} body bytes with only {available} allowed")]
    Exceeded {
        /// Bytes in the frame.
        sent: u64,
        /// Bytes the window allowed.
        available: u64,
    },
    /// The window would grow past 2^31-1 bytes (the same bound as HTTP/2).
    #[error("window would exceed 2^31-1 bytes")]
    Overflow,
}

/// Largest window either side may hold open.
pub const MAX_WINDOW: u64 = (1 << 31) - 1;

impl Window {
    /// A window of `initial` bytes.
    pub fn new(initial: u32) -> Window {
        Window {
            available: initial as u64,
        }
    }

    /// Bytes that may still arrive.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// Records `n` bytes arriving.
    pub fn consume(&mut self, n: usize) -> Result<(), WindowError> {
        let n = n as u64;
        if n > self.available {
            return Err(WindowError::Exceeded {
                sent: n,
                available: self.available,
            });
        }
        self.available -= n;
        Ok(())
    }

    /// Records a grant of `n` more bytes.
    pub fn grant(&mut self, n: u32) -> Result<(), WindowError> {
        let next = self.available + n as u64;
        if next > MAX_WINDOW {
            return Err(WindowError::Overflow);
        }
        self.available = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_past_the_grant_is_an_error() {
        let mut w = Window::new(10);
        w.consume(6).unwrap();
        assert_eq!(
            w.consume(5),
            Err(WindowError::Exceeded {
                sent: 5,
                available: 4
            })
        );
        w.grant(1).unwrap();
        w.consume(5).unwrap();
        assert_eq!(w.available(), 0);
        assert_eq!(Window::new(0).grant(u32::MAX), Err(WindowError::Overflow));
    }
}
