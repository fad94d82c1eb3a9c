//! The one error type of the HTTP layer, and the one place errors become HTTP responses.
//!
//! Every failure — a body that is not JSON, a field of the wrong type, a value out of
//! range, an unknown model, an engine that is full — is an [`ApiError`], rendered as
//! OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_engine::EngineError;
use serde::Serialize;

/// Seconds a client is told to wait (`Retry-After`) when the engine's queue is full.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// An error returned to the client, with its HTTP status and OpenAI-style fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI error type, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: Option<&'static str>,
}

/// OpenAI's error body: `{"error": {...}}`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorResponse {
    /// The error object.
    pub error: ErrorBody,
}

/// The inner error object of [`ErrorResponse`].
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI error type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, or null.
    pub param: Option<String>,
    /// Machine-readable code, or null.
    pub code: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// 400 `invalid_request_error`, naming the field at fault.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = Some(param.into());
        e
    }

    /// 400 `invalid_request_error` not tied to one field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist."),
        );
        e.param = Some("model".into());
        e.code = Some("model_not_found");
        e
    }

    /// 401 for a missing or wrong API key.
    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect or missing API key. Send it as `Authorization: Bearer <key>`.",
        );
        e.code = Some("invalid_api_key");
        e
    }

    /// 413 for a body over `--max-body-bytes`.
    pub fn too_large(limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes."),
        );
        e.code = Some("request_too_large");
        e
    }

    /// 503 while the model loads or the server drains.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message);
        e.code = Some("service_unavailable");
        e
    }

    /// 503 with `Retry-After` when the waiting queue is full.
    pub fn queue_full() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The server is overloaded: too many requests are waiting. Retry later.",
        );
        e.code = Some("queue_full");
        e
    }

    /// 404 for a path that does not exist.
    pub fn not_found_route(path: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No route for {path}."),
        );
        e.code = Some("not_found");
        e
    }

    /// 500 for a failure inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The body as OpenAI sends it.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: ErrorBody {
                message: self.message.clone(),
                kind: self.kind.to_string(),
                param: self.param.clone(),
                code: self.code.map(str::to_string),
            },
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidRequest(msg) => ApiError::bad_request(msg),
            EngineError::QueueFull => ApiError::queue_full(),
            e @ EngineError::PromptTooLong { .. } => {
                let mut err = ApiError::invalid("messages", e.to_string());
                err.code = Some("context_length_exceeded");
                err
            }
            EngineError::Shutdown => ApiError::unavailable("The server is shutting down."),
            #[allow(unreachable_patterns)]
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.code == Some("queue_full");
        let mut resp = (self.status, Json(self.body())).into_response();
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let v = serde_json::to_value(ApiError::model_not_found("x").body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains('x'));
    }

    #[test]
    fn engine_errors_map_to_statuses() {
        assert_eq!(
            ApiError::from(EngineError::QueueFull).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(EngineError::Shutdown).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let e = ApiError::from(EngineError::InvalidRequest("top_p bad".into()));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn queue_full_sets_retry_after() {
        let r = ApiError::queue_full().into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
