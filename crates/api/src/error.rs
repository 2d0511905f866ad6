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
        use engine::ErrorKind as K;
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            K::InvalidParameter => StatusCode::BAD_REQUEST,
            K::Conflict => StatusCode::CONFLICT,
            K::Forbidden => StatusCode::FORBIDDEN,
            K::Unauthorized => StatusCode::UNAUTHORIZED,
            K::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            K::NotModified => StatusCode::NOT_MODIFIED,
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            K::System => {
                // The client gets the text; the daemon's log gets the chain of causes too.
                if std::error::Error::source(&e).is_some() {
                    tracing::debug!(error = ?e, "request failed");
                }
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// The result of a route handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
