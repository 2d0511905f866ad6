//! API errors: Docker's status codes and `{"message": …}` bodies.

use http::StatusCode;

/// An error answered to the client as `{"message": …}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Text the docker CLI prints after `Error response from daemon: `.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 for a path no route serves (dockerd's wording).
    pub fn page_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "page not found")
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> ApiError {
        use engine::Error as E;
        let status = match &e {
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            E::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            E::NotModified => StatusCode::NOT_MODIFIED,
            E::System(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// The result of a route handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
