//! What the engine sends back per request, and the per-sequence text tracker that turns
//! tokens into streamed text: incremental detokenization plus stop strings, which are
//! held back until they can no longer be the start of a stop and are never emitted.

use corvid_model::tokenizer::{IncrementalDecoder, Tokenizer};
use std::sync::Arc;

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// EOS, a stop token or a stop string.
    Stop,
    /// `max_tokens` or the context length.
    Length,
    /// Aborted by the client (disconnect, cancel) or shutdown.
    Abort,
    /// The engine failed on this request.
    Error,
}

impl FinishReason {
    /// The OpenAI / vLLM spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Abort => "abort",
            Self::Error => "error",
        }
    }
}

/// Logprob of a generated token and the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The sampled token.
    pub token_id: u32,
    /// Its log-probability under the model.
    pub logprob: f32,
    /// Top alternatives `(token, logprob)`, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// One update for one of a request's `n` sequences.
#[derive(Clone, Debug)]
pub struct RequestOutput {
    /// Which of the `n` samples.
    pub index: usize,
    /// Text completed since the previous update.
    pub text: String,
    /// Tokens generated since the previous update.
    pub token_ids: Vec<u32>,
    /// Logprobs of those tokens, when requested.
    pub logprobs: Vec<TokenLogprob>,
    /// Set on the last update of this sequence.
    pub finish_reason: Option<FinishReason>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Tokens generated so far by this sequence.
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
}

/// Streaming text for one sequence, with stop-string detection.
pub struct TextTracker {
    decoder: IncrementalDecoder,
    text: String,
    emitted: usize,
    stops: Vec<String>,
    holdback: usize,
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl TextTracker {
    /// A tracker decoding with `tokenizer`, stopping at any of `stops`.
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special: bool, stops: Vec<String>) -> Self {
        let holdback = stops
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(1)
            .saturating_sub(1);
        Self {
            decoder: IncrementalDecoder::new(tokenizer, skip_special),
            text: String::new(),
            emitted: 0,
            stops,
            holdback,
        }
    }

    /// Adds a token; returns the text safe to emit and whether a stop string ended it.
    pub fn push(&mut self, token: u32, check_stops: bool) -> (String, bool) {
        let piece = self.decoder.push(token);
        self.append(&piece, check_stops)
    }

    /// Ends the sequence: returns whatever text remains (stop strings still apply).
    pub fn finish(&mut self, check_stops: bool) -> String {
        let rest = self.decoder.flush();
        let (mut out, stopped) = self.append(&rest, check_stops);
        if !stopped {
            out.push_str(&self.text[self.emitted..]);
            self.emitted = self.text.len();
        }
        out
    }

    fn append(&mut self, piece: &str, check_stops: bool) -> (String, bool) {
        let search_from =
            floor_char_boundary(&self.text, self.emitted.saturating_sub(self.holdback));
        self.text.push_str(piece);
        if check_stops {
            let hit = self
                .stops
                .iter()
                .filter_map(|s| {
                    self.text[search_from..]
                        .find(s.as_str())
                        .map(|i| search_from + i)
                })
                .min();
            if let Some(i) = hit {
                self.text.truncate(i);
                let out = self.text[self.emitted.min(i)..].to_string();
                self.emitted = self.text.len();
                return (out, true);
            }
        }
        let safe = if self.stops.is_empty() {
            self.text.len()
        } else {
            floor_char_boundary(&self.text, self.text.len().saturating_sub(self.holdback))
        };
        if safe <= self.emitted {
            return (String::new(), false);
        }
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (out, false)
    }

    /// All text so far (after stop truncation).
    pub fn text(&self) -> &str {
        &self.text
    }
}
