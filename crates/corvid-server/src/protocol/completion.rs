//! `POST /v1/completions`: request, response and stream chunk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{SamplingFields, StopField, StreamOptions, Usage};

/// `prompt`: a string, a list of one string, token ids, or a list of one token-id list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PromptField {
    /// One text prompt.
    Text(String),
    /// A list of text prompts (corvid serves exactly one per request).
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// A list of token-id prompts (exactly one).
    TokenLists(Vec<Vec<u32>>),
}

/// The body of `POST /v1/completions`, with vLLM's extra sampling fields.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The served model name (optional, like vLLM).
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt.
    pub prompt: PromptField,
    /// Prepend the prompt to the completion.
    #[serde(default)]
    pub echo: bool,
    /// Top logprobs per token (0–20).
    #[serde(default)]
    pub logprobs: Option<i64>,
    /// Token budget (default 16, as in OpenAI and vLLM).
    #[serde(default)]
    pub max_tokens: Option<i64>,
    /// Stream Server-Sent Events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices.
    #[serde(default)]
    pub n: Option<i64>,
    /// Temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Top-p.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Top-k (vLLM extension).
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Min-p (vLLM extension).
    #[serde(default)]
    pub min_p: Option<f32>,
    /// Repetition penalty (vLLM extension).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    /// Presence penalty.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Option<StopField>,
    /// Stop token ids (vLLM extension).
    #[serde(default)]
    pub stop_token_ids: Option<Vec<u32>>,
    /// Ignore EOS (vLLM extension).
    #[serde(default)]
    pub ignore_eos: Option<bool>,
    /// Minimum tokens (vLLM extension).
    #[serde(default)]
    pub min_tokens: Option<i64>,
    /// Skip special tokens when detokenizing (vLLM extension).
    #[serde(default)]
    pub skip_special_tokens: Option<bool>,
    /// Add BOS etc. when tokenizing the prompt (vLLM extension, default true).
    #[serde(default)]
    pub add_special_tokens: Option<bool>,
    /// OpenAI's end-user id (accepted, unused).
    #[serde(default)]
    pub user: Option<String>,
}

impl CompletionRequest {
    /// The sampling fields, for validation.
    pub fn sampling(&self) -> SamplingFields {
        SamplingFields {
            n: self.n,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            max_tokens: Some(self.max_tokens.unwrap_or(16)),
            max_tokens_field: "max_tokens",
            min_tokens: self.min_tokens,
            stop: self.stop.clone(),
            stop_token_ids: self.stop_token_ids.clone(),
            ignore_eos: self.ignore_eos,
            logprobs: self.logprobs,
            logprobs_field: "logprobs",
            skip_special_tokens: self.skip_special_tokens,
        }
    }
}

/// Legacy completions logprobs: parallel lists per token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CompletionLogprobs {
    /// Offset of each token in the choice's text.
    pub text_offset: Vec<usize>,
    /// Log-probability of each token (null for echoed prompt tokens).
    pub token_logprobs: Vec<Option<f32>>,
    /// Each token as text.
    pub tokens: Vec<String>,
    /// The top alternatives of each token (null for echoed prompt tokens).
    pub top_logprobs: Vec<Option<BTreeMap<String, f32>>>,
}

/// One choice of a completion (or a delta of it in a stream chunk).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Which of the `n` choices.
    pub index: usize,
    /// Text (the whole text, or the new text in a stream chunk).
    pub text: String,
    /// Logprobs when asked for.
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop`, `length`, `abort`, or null while generating.
    pub finish_reason: Option<String>,
}

/// The response of `POST /v1/completions` (object `text_completion`); stream chunks
/// have the same shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// `cmpl-<request id>`.
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model name.
    pub model: String,
    /// The choices.
    pub choices: Vec<CompletionChoice>,
    /// Token counts (always in a full response; in a stream only in the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}
