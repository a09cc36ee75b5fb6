//! The admin API's bearer token, compared in constant time.

use http::header::AUTHORIZATION;
use http::HeaderMap;
use pullman_proto::handshake::token_matches;

use crate::config::Secret;

/// A request without the right token (401), and what to tell the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unauthorized(pub(crate) &'static str);

/// Checks `Authorization: Bearer TOKEN` against `token`.
pub(crate) fn check(headers: &HeaderMap, token: &Secret) -> Result<(), Unauthorized> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Unauthorized(
            "missing bearer token: send Authorization: Bearer <admin.token>",
        ));
    };
    let presented = value
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .ok_or(Unauthorized(
            "the Authorization header must be Bearer <admin.token>",
        ))?;
    if !token_matches(token.expose().as_bytes(), presented) {
        return Err(Unauthorized("wrong token"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let token = Secret::new("s3cret");
        assert!(check(&with("Bearer s3cret"), &token).is_ok());
        for (headers, why) in [
            (HeaderMap::new(), "missing bearer token"),
            (with("Bearer s3cre"), "wrong token"),
            (with("Bearer s3cret "), "wrong token"),
            (with("Basic s3cret"), "must be Bearer"),
            (with("bearers3cret"), "must be Bearer"),
        ] {
            let Unauthorized(message) = check(&headers, &token).unwrap_err();
            assert!(message.contains(why), "{message}");
        }
    }
}
