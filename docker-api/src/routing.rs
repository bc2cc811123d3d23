//! Versioning and the top of the request path: `/v1.xx/…` prefixes, the
//! versions shoal speaks, and the answer for every endpoint it does not.
//!
//! The CLI pings first, reads `Api-Version`, and then prefixes every path with
//! the lower of its own version and shoal's. Unprefixed paths are served at
//! shoal's version, as dockerd does.

use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use crate::errors::ApiError;

/// The API version shoal answers with: what the swarm endpoints it serves
/// look like in Docker 27 (API 1.47). Clients negotiate down to it.
pub const API_VERSION: ApiVersion = (1, 47);
/// The oldest version accepted (Docker's own minimum).
pub const MIN_API_VERSION: ApiVersion = (1, 24);

/// An API version, `(major, minor)`.
pub type ApiVersion = (u32, u32);

pub fn version_string(v: ApiVersion) -> String {
    format!("{}.{}", v.0, v.1)
}

/// Splits `/v1.45/services` into the version and `/services`. A path
/// without a version prefix is returned whole; a version shoal does not
/// speak is refused with Docker's wording.
pub fn split_version(path: &str) -> Result<(Option<ApiVersion>, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (number, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some((major, minor)) = number.split_once('.') else {
        return Ok((None, path));
    };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return Ok((None, path));
    };
    let version = (major, minor);
    if version > API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {} is too new. Maximum supported API version is {}",
            version_string(version),
            version_string(API_VERSION)
        )));
    }
    if version < MIN_API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {} is too old. Minimum supported API version is {}, please upgrade \
             your client to a newer version",
            version_string(version),
            version_string(MIN_API_VERSION)
        )));
    }
    Ok((Some(version), tail))
}

/// Strips the version prefix and hands the request to the router.
pub async fn dispatch(router: Router, mut request: Request<hyper::body::Incoming>) -> Response {
    let path = request.uri().path().to_string();
    let rest = match split_version(&path) {
        Ok((_, rest)) => rest.to_string(),
        Err(e) => return e.into_response(),
    };
    if rest != path {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest,
        };
        match Uri::builder().path_and_query(path_and_query).build() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return ApiError::bad_request(format!("invalid path: {e}")).into_response(),
        }
    }
    let request = request.map(axum::body::Body::new);
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// How much of a refused request's body is read before answering.
const REFUSED_BODY_READ: usize = 1024 * 1024;

/// Every endpoint shoal does not serve: a clear 501 naming it.
///
/// The body is read first (up to [`REFUSED_BODY_READ`]): a connection
/// closed with its request body unread makes the client's write fail, and
/// the docker CLI then shows "write: broken pipe" instead of the refusal
/// (seen in CI with `docker run`, whose `containers/create` carries JSON).
pub async fn unsupported(method: Method, uri: Uri, body: axum::body::Body) -> ApiError {
    let _ = axum::body::to_bytes(body, REFUSED_BODY_READ).await;
    ApiError::unsupported(format!("{method} {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_split_off() {
        assert_eq!(
            split_version("/v1.45/services/abc").unwrap(),
            (Some((1, 45)), "/services/abc")
        );
        assert_eq!(
            split_version("/v1.47/_ping").unwrap(),
            (Some((1, 47)), "/_ping")
        );
        assert_eq!(split_version("/services").unwrap(), (None, "/services"));
        // Not a version: served as it is (and then not found).
        assert_eq!(split_version("/version").unwrap(), (None, "/version"));
        assert_eq!(split_version("/vx.y/info").unwrap(), (None, "/vx.y/info"));
    }

    #[test]
    fn versions_outside_the_range_are_refused() {
        let new = split_version("/v1.99/info").unwrap_err();
        assert!(new.message.contains("too new"), "{}", new.message);
        assert!(new.message.contains("1.47"));
        let old = split_version("/v1.12/info").unwrap_err();
        assert!(old.message.contains("too old"), "{}", old.message);
        assert_eq!(old.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
