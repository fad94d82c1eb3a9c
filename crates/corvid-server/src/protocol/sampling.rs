//! The sampling fields both generation requests accept (vLLM's names), gathered for
//! [`crate::validate`], and the names each API gives them.

use serde::Deserialize;

/// `stop`: one string or a list of strings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StopField {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl StopField {
    /// The stop strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopField::One(s) => vec![s],
            StopField::Many(v) => v,
        }
    }
}

/// The sampling fields of a request, as written by the client (not yet checked).
/// Built from either request type, checked by [`crate::validate`].
#[derive(Debug, Clone, Default)]
pub struct SamplingFields {
    /// Number of choices.
    pub n: Option<i64>,
    /// Temperature (0 = greedy).
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Top-k (-1 or 0 = off).
    pub top_k: Option<i64>,
    /// Min-p.
    pub min_p: Option<f32>,
    /// Repetition penalty (1 = off).
    pub repetition_penalty: Option<f32>,
    /// Presence penalty.
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// RNG seed.
    pub seed: Option<i64>,
    /// Token budget (`max_tokens`, or chat's `max_completion_tokens`).
    pub max_tokens: Option<i64>,
    /// Minimum tokens before EOS/stop may end the request.
    pub min_tokens: Option<i64>,
    /// Stop strings.
    pub stop: Option<StopField>,
    /// Stop token ids.
    pub stop_token_ids: Option<Vec<u32>>,
    /// Keep generating past EOS.
    pub ignore_eos: Option<bool>,
    /// Number of top logprobs per token (`None` = no logprobs).
    pub logprobs: Option<i64>,
    /// Drop special tokens from the text.
    pub skip_special_tokens: Option<bool>,
    /// Chat only: `top_logprobs` was sent without `logprobs: true` (refused).
    pub top_logprobs_without_logprobs: bool,
    /// What the request calls its prompt, budget and logprobs fields.
    pub names: FieldNames,
}

/// The names one API gives the fields the engine calls `prompt`, `max_tokens` and
/// `logprobs`, so an error is reported under the name the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldNames {
    /// `prompt` (completions) or `messages` (chat).
    pub prompt: &'static str,
    /// `max_tokens`, or chat's `max_completion_tokens` when that was sent.
    pub max_tokens: &'static str,
    /// `logprobs` (completions) or `top_logprobs` (chat).
    pub logprobs: &'static str,
}

impl FieldNames {
    /// The names of `/v1/completions`.
    pub const COMPLETIONS: FieldNames = FieldNames {
        prompt: "prompt",
        max_tokens: "max_tokens",
        logprobs: "logprobs",
    };

    /// The API name of a field the engine names `engine_field`.
    pub fn api_name(&self, engine_field: &'static str) -> &'static str {
        match engine_field {
            "prompt" => self.prompt,
            "max_tokens" => self.max_tokens,
            "logprobs" => self.logprobs,
            other => other,
        }
    }
}

impl Default for FieldNames {
    fn default() -> Self {
        Self::COMPLETIONS
    }
}
