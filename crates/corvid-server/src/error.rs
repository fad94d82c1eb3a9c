//! The one error type of the HTTP layer, and the one place errors become HTTP responses.
//!
//! Every failure — a body that is not JSON, a field of the wrong type, a value out of
//! range, an unknown model, an engine that is full — is an [`ApiError`], rendered as
//! OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_engine::EngineError;

use crate::protocol::FieldNames;
use serde::Serialize;

/// Seconds a client is told to wait (`Retry-After`) when the engine's queue is full.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Marks a response that refused a request (503), with the reason (`queue_full`,
/// `service_unavailable`), so the metrics layer counts rejections without parsing bodies.
#[derive(Debug, Clone, Copy)]
pub struct Rejected(pub &'static str);

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

    /// 408 when the request body did not arrive within `--timeout-request-body`; the
    /// response closes the connection.
    pub fn body_timeout() -> Self {
        let mut e = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "The request body did not arrive in time.",
        );
        e.code = Some("request_timeout");
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

    /// 503 once the engine thread has died: the server exits for its orchestrator to
    /// restart it, and says so to every request until then.
    pub fn engine_dead() -> Self {
        Self::unavailable("The inference engine has failed; the server is restarting.")
    }

    /// 500 for a request the engine failed while running it (a streamed request gets
    /// this as its last event).
    pub fn engine_failed() -> Self {
        let mut e = Self::internal("The inference engine failed while running this request.");
        e.code = Some("engine_error");
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

impl ApiError {
    /// An engine refusal as the client sees it, with engine field names translated
    /// to the request's own (`names`).
    pub fn from_engine(e: EngineError, names: &FieldNames) -> Self {
        match e {
            EngineError::InvalidRequest(p) => {
                let field = names.api_name(p.field);
                ApiError::invalid(field, format!("`{field}` {}", p.problem))
            }
            EngineError::QueueFull => ApiError::queue_full(),
            EngineError::PromptTooLong {
                prompt_tokens,
                max_model_len,
            } => ApiError::context_length(names.prompt, prompt_tokens, None, max_model_len),
            EngineError::Shutdown => ApiError::unavailable("The server is shutting down."),
            EngineError::Dead => ApiError::engine_dead(),
            other @ (EngineError::InvalidConfig(_) | EngineError::Load(_)) => {
                ApiError::internal(other.to_string())
            }
        }
    }

    /// 400 `context_length_exceeded`: the prompt (plus `max_tokens`, when given) does not
    /// fit the context; `prompt_field` names the prompt when the budget is not at fault.
    pub fn context_length(
        prompt_field: &'static str,
        prompt: usize,
        max_tokens: Option<(&'static str, usize)>,
        max_model_len: usize,
    ) -> Self {
        let (field, message) = match max_tokens {
            Some((field, m)) => (field, format!(
                "This model's maximum context length is {max_model_len} tokens. However, you requested {} tokens ({prompt} in the prompt, {m} for the completion). Please reduce the length of the prompt or the completion.",
                prompt + m
            )),
            None => (prompt_field, format!(
                "This model's maximum context length is {max_model_len} tokens. However, your prompt has {prompt} tokens. Please reduce the length of the prompt."
            )),
        };
        let mut e = ApiError::invalid(field, message);
        e.code = Some("context_length_exceeded");
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.code == Some("queue_full");
        let mut resp = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // For the rejection counter (`metrics::http::track`).
            resp.extensions_mut()
                .insert(Rejected(self.code.unwrap_or("service_unavailable")));
        }
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a late body is still on its way: the connection cannot be reused.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corvid_engine::InvalidParam;

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
            ApiError::from_engine(EngineError::QueueFull, &FieldNames::COMPLETIONS).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from_engine(EngineError::Shutdown, &FieldNames::COMPLETIONS).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let chat = FieldNames {
            prompt: "messages",
            max_tokens: "max_completion_tokens",
            logprobs: "top_logprobs",
        };
        let bad = InvalidParam::new("logprobs", "must be between 0 and 20, got 21.");
        let e = ApiError::from_engine(bad.into(), &chat);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        assert!(
            e.message.starts_with("`top_logprobs` must"),
            "{}",
            e.message
        );
        let long = EngineError::PromptTooLong {
            prompt_tokens: 9,
            max_model_len: 8,
        };
        let e = ApiError::from_engine(long, &chat);
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert_eq!(e.code, Some("context_length_exceeded"));
    }

    #[test]
    fn queue_full_sets_retry_after() {
        let r = ApiError::queue_full().into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
