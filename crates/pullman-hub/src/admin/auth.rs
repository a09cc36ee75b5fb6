//! The admin API's bearer token, compared in constant time.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use pullman_proto::handshake::token_matches;

use super::api::ApiError;
use crate::config::Secret;

/// Checks `Authorization: Bearer TOKEN` against `token`.
pub(crate) fn check(headers: &HeaderMap, token: &Secret) -> Result<(), ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, message);
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized(
            "missing bearer token: send Authorization: Bearer <admin.token>",
        ));
    };
    let presented = value
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer <admin.token>"))?;
    if !token_matches(token.expose().as_bytes(), presented) {
        return Err(unauthorized("wrong token"));
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
            let e = check(&headers, &token).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
            assert!(e.message.contains(why), "{}", e.message);
        }
    }
}
