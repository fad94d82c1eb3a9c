//! `ApiJson<T>`: axum's JSON extractor, but every rejection is an OpenAI-style
//! [`ApiError`] — malformed JSON and wrong types are 400 naming the field, an
//! oversized body is 413. Like vLLM, the body is parsed whatever its `Content-Type`.

use axum::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::body_timeout::is_body_timeout;
use crate::error::ApiError;

/// A JSON request body parsed into `T`, failing with [`ApiError`].
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Parses a JSON body, naming the failing field (`temperature: invalid type ...`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request(format!(
                    "Malformed JSON body: {inner}"
                )))
            } else if path.is_empty() || path == "." {
                Err(ApiError::bad_request(format!(
                    "Invalid request body: {inner}"
                )))
            } else {
                Err(ApiError::invalid(
                    path.clone(),
                    format!("Invalid value for `{path}`: {inner}"),
                ))
            }
        }
    }
}

#[async_trait]
impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    let mut err = ApiError::too_large(0);
                    err.message = format!("Request body too large: {}", e.body_text());
                    err
                } else if is_body_timeout(&e) {
                    ApiError::body_timeout()
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[allow(dead_code)]
        temperature: Option<f32>,
    }

    #[test]
    fn malformed_json_is_400() {
        let e = parse_json::<T>(b"{\"temperature\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("Malformed"), "{}", e.message);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = parse_json::<T>(br#"{"temperature": "hot"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("temperature"));
    }

    #[test]
    fn valid_body_parses() {
        assert!(parse_json::<T>(br#"{"temperature": 0.5, "extra": 1}"#).is_ok());
    }
}
