//! `POST /tokenize` and `POST /detokenize` (vLLM's shapes).

use serde::{Deserialize, Serialize};

use super::chat::ChatMessageIn;

/// `POST /tokenize`: either a `prompt` or chat `messages`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    /// The served model name (optional).
    #[serde(default)]
    pub model: Option<String>,
    /// Text to tokenize.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Chat messages to render with the chat template, then tokenize.
    #[serde(default)]
    pub messages: Option<Vec<ChatMessageIn>>,
    /// Add BOS etc. (default: true for `prompt`, false for `messages`).
    #[serde(default)]
    pub add_special_tokens: Option<bool>,
    /// End the rendered chat with the assistant header (default true).
    #[serde(default)]
    pub add_generation_prompt: Option<bool>,
    /// Also return each token as text.
    #[serde(default)]
    pub return_token_strs: Option<bool>,
}

/// Response of `POST /tokenize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenizeResponse {
    /// Number of tokens.
    pub count: usize,
    /// The model's context length.
    pub max_model_len: usize,
    /// The token ids.
    pub tokens: Vec<u32>,
    /// Each token as text, when asked for.
    pub token_strs: Option<Vec<String>>,
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    /// The served model name (optional).
    #[serde(default)]
    pub model: Option<String>,
    /// Token ids to turn into text.
    pub tokens: Vec<u32>,
}

/// Response of `POST /detokenize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetokenizeResponse {
    /// The text.
    pub prompt: String,
}
