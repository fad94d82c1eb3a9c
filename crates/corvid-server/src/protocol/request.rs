//! The fields every generation request shares (model, streaming, vLLM's sampling
//! parameters), written once: [`generation_request!`] declares a request struct with them
//! plus its own fields, and a `common_sampling` method that gathers them for validation.
//! A macro rather than `#[serde(flatten)]`: flattening loses the field path in type
//! errors, and the OpenAI error's `param` must name the offending field.

/// Declares a request body struct holding the shared fields after its own.
macro_rules! generation_request {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// The served model name (optional, like vLLM).
            #[serde(default)]
            pub model: Option<String>,
            /// Stream Server-Sent Events.
            #[serde(default)]
            pub stream: bool,
            /// Streaming options.
            #[serde(default)]
            pub stream_options: Option<$crate::protocol::usage::StreamOptions>,
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
            pub stop: Option<$crate::protocol::sampling::StopField>,
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
            /// OpenAI's end-user id (accepted, unused).
            #[serde(default)]
            pub user: Option<String>,
        }

        impl $name {
            /// The shared sampling fields with the request's own token budget and logprobs
            /// (and the names its fields go by, for error messages).
            fn common_sampling(
                &self,
                max_tokens: Option<i64>,
                logprobs: Option<i64>,
                names: $crate::protocol::sampling::FieldNames,
            ) -> $crate::protocol::sampling::SamplingFields {
                $crate::protocol::sampling::SamplingFields {
                    n: self.n,
                    temperature: self.temperature,
                    top_p: self.top_p,
                    top_k: self.top_k,
                    min_p: self.min_p,
                    repetition_penalty: self.repetition_penalty,
                    presence_penalty: self.presence_penalty,
                    frequency_penalty: self.frequency_penalty,
                    seed: self.seed,
                    max_tokens,
                    min_tokens: self.min_tokens,
                    stop: self.stop.clone(),
                    stop_token_ids: self.stop_token_ids.clone(),
                    ignore_eos: self.ignore_eos,
                    logprobs,
                    skip_special_tokens: self.skip_special_tokens,
                    top_logprobs_without_logprobs: false,
                    names,
                }
            }
        }
    };
}

pub(crate) use generation_request;
