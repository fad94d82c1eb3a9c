//! Between text and token ids for the handlers: tokenizing a request's text (failures
//! are 400s naming the field) and a token's text and bytes for logprobs.

use corvid_model::tokenizer::Tokenizer;

use crate::error::ApiError;

/// The text of one token (its raw bytes, lossily decoded), for logprobs.
pub fn token_text(tok: &Tokenizer, id: u32) -> String {
    tok.token_to_piece(id)
        .map_or_else(String::new, |b| String::from_utf8_lossy(&b).into_owned())
}

/// The raw bytes of one token, for chat logprobs.
pub fn token_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    tok.token_to_piece(id).unwrap_or_default()
}

/// Tokenizes text, mapping tokenizer failures to 400.
pub fn encode(
    tok: &Tokenizer,
    text: &str,
    add_special: bool,
    field: &str,
) -> Result<Vec<u32>, ApiError> {
    tok.encode(text, add_special, true)
        .map_err(|e| ApiError::invalid(field, format!("Cannot tokenize `{field}`: {e}")))
}
