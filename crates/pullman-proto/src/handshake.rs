//! The handshake's arithmetic: choosing a version and checking a token.

use subtle::ConstantTimeEq;

/// The highest version in both ranges, if they overlap.
pub fn negotiate_version(ours: (u16, u16), theirs: (u16, u16)) -> Option<u16> {
    let low = ours.0.max(theirs.0);
    let high = ours.1.min(theirs.1);
    (low <= high).then_some(high)
}

/// Compares a presented token with the expected one in time that does not depend on where
/// they differ, so a remote guesser learns nothing from how fast a refusal comes.
pub fn token_matches(expected: &[u8], presented: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false without comparing bytes; the
    // length of the expected token is not treated as a secret.
    expected.ct_eq(presented).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_common_version_wins() {
        assert_eq!(negotiate_version((1, 3), (2, 5)), Some(3));
        assert_eq!(negotiate_version((1, 1), (2, 2)), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secret", b"secreT"));
        assert!(!token_matches(b"secret", b"secret2"));
        assert!(!token_matches(b"secret", b""));
    }
}
