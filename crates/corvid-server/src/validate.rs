//! The validation boundary: a request as written → a [`ValidatedRequest`] that the
//! engine accepts as is.
//!
//! The limits themselves live in the engine ([`SamplingParams::validate`],
//! [`EngineHandle::check_prompt`]), defined once; this module turns the API's spelling
//! into the engine's (`top_k: -1`, a missing token budget, chat's
//! `max_completion_tokens`), checks what only the API has (the token budget against
//! the context, `top_logprobs` without `logprobs`), and reports every engine refusal
//! under the field name the client sent.

use corvid_engine::{EngineHandle, InvalidParam, RequestStream, SamplingParams};

use crate::error::ApiError;
use crate::protocol::{FieldNames, SamplingFields};

/// A request that passed every check: what the engine runs, and how to name its fields
/// if the engine still refuses it (a full queue, a shutdown).
#[derive(Debug, Clone)]
pub struct ValidatedRequest {
    /// Prompt token ids: not empty, in the vocabulary, shorter than the context.
    pub prompt_tokens: Vec<u32>,
    /// Checked sampling parameters with the token budget resolved.
    pub params: SamplingParams,
    /// The request's names for the engine's `prompt`, `max_tokens` and `logprobs`.
    pub names: FieldNames,
}

impl ValidatedRequest {
    /// Queues the request in the engine under `request_id`.
    pub fn submit(
        self,
        engine: &EngineHandle,
        request_id: &str,
    ) -> Result<RequestStream, ApiError> {
        let names = self.names;
        engine
            .add_request(
                request_id.to_string(),
                corvid_engine::PromptInput::Tokens(self.prompt_tokens),
                self.params,
            )
            .map_err(|e| ApiError::from_engine(e, &names))
    }
}

/// Checks a tokenized prompt and the sampling fields against `engine`'s limits.
pub fn validate(
    engine: &EngineHandle,
    prompt_tokens: Vec<u32>,
    fields: &SamplingFields,
) -> Result<ValidatedRequest, ApiError> {
    let names = fields.names;
    engine
        .check_prompt(&prompt_tokens)
        .map_err(|e| ApiError::from_engine(e, &names))?;
    let params = sampling_params(fields, prompt_tokens.len(), engine.config().max_model_len)?;
    Ok(ValidatedRequest {
        prompt_tokens,
        params,
        names,
    })
}

/// An integer the engine holds as unsigned; negative values are refused here.
fn unsigned(field: &'static str, v: i64) -> Result<usize, InvalidParam> {
    usize::try_from(v)
        .map_err(|_| InvalidParam::new(field, format!("must not be negative, got {v}.")))
}

/// Builds checked [`SamplingParams`] for a prompt of `prompt_tokens` tokens (already
/// checked to fit) and a context of `max_model_len`. A missing token budget means
/// "up to the context end".
pub fn sampling_params(
    f: &SamplingFields,
    prompt_tokens: usize,
    max_model_len: usize,
) -> Result<SamplingParams, ApiError> {
    let names = f.names;
    let refuse = |p: InvalidParam| ApiError::from_engine(p.into(), &names);
    if f.top_logprobs_without_logprobs {
        return Err(ApiError::invalid(
            "top_logprobs",
            "`top_logprobs` needs `logprobs: true`.",
        ));
    }
    let d = SamplingParams::default();
    let top_k = match f.top_k {
        None | Some(-1) | Some(0) => None,
        Some(k) if k > 0 => Some(k as usize),
        Some(k) => {
            return Err(ApiError::invalid(
                "top_k",
                format!("`top_k` must be -1 (off) or at least 1, got {k}."),
            ))
        }
    };
    let max_tokens = match f.max_tokens {
        None => max_model_len.saturating_sub(prompt_tokens),
        Some(m) => {
            let m = unsigned("max_tokens", m).map_err(refuse)?;
            if prompt_tokens.saturating_add(m) > max_model_len {
                return Err(ApiError::context_length(
                    names.prompt,
                    prompt_tokens,
                    Some((names.max_tokens, m)),
                    max_model_len,
                ));
            }
            m
        }
    };
    let params = SamplingParams {
        n: unsigned("n", f.n.unwrap_or(1)).map_err(refuse)?,
        temperature: f.temperature.unwrap_or(d.temperature),
        top_p: f.top_p.unwrap_or(d.top_p),
        top_k,
        min_p: f.min_p.unwrap_or(d.min_p),
        repetition_penalty: f.repetition_penalty.unwrap_or(d.repetition_penalty),
        presence_penalty: f.presence_penalty.unwrap_or(d.presence_penalty),
        frequency_penalty: f.frequency_penalty.unwrap_or(d.frequency_penalty),
        seed: f.seed.map(|s| s as u64),
        max_tokens: Some(max_tokens),
        min_tokens: unsigned("min_tokens", f.min_tokens.unwrap_or(0)).map_err(refuse)?,
        stop: f
            .stop
            .clone()
            .map(|s| s.into_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        stop_token_ids: f.stop_token_ids.clone().unwrap_or_default(),
        ignore_eos: f.ignore_eos.unwrap_or(false),
        logprobs: f
            .logprobs
            .map(|k| unsigned("logprobs", k))
            .transpose()
            .map_err(refuse)?,
        skip_special_tokens: f.skip_special_tokens.unwrap_or(true),
    };
    params.validate().map_err(refuse)?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::StopField;
    use axum::http::StatusCode;

    fn fields() -> SamplingFields {
        SamplingFields::default()
    }

    #[test]
    fn defaults_fill_budget_to_context_end() {
        let p = sampling_params(&fields(), 10, 100).unwrap();
        assert_eq!(p.max_tokens, Some(90));
        assert_eq!(p.n, 1);
        assert!(p.skip_special_tokens);
    }

    #[test]
    fn fields_are_copied() {
        let f = SamplingFields {
            temperature: Some(0.0),
            top_k: Some(-1),
            stop: Some(StopField::One("\n".into())),
            max_tokens: Some(5),
            seed: Some(7),
            logprobs: Some(3),
            ..fields()
        };
        let p = sampling_params(&f, 3, 100).unwrap();
        assert_eq!(p.temperature, 0.0);
        assert_eq!(p.top_k, None);
        assert_eq!(p.stop, vec!["\n".to_string()]);
        assert_eq!(p.max_tokens, Some(5));
        assert_eq!(p.seed, Some(7));
        assert_eq!(p.logprobs, Some(3));
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases: Vec<(SamplingFields, &str)> = vec![
            (
                SamplingFields {
                    temperature: Some(-1.0),
                    ..fields()
                },
                "temperature",
            ),
            (
                SamplingFields {
                    top_p: Some(1.5),
                    ..fields()
                },
                "top_p",
            ),
            (
                SamplingFields {
                    top_p: Some(0.0),
                    ..fields()
                },
                "top_p",
            ),
            (
                SamplingFields {
                    n: Some(0),
                    ..fields()
                },
                "n",
            ),
            (
                SamplingFields {
                    top_k: Some(-5),
                    ..fields()
                },
                "top_k",
            ),
            (
                SamplingFields {
                    logprobs: Some(21),
                    ..fields()
                },
                "logprobs",
            ),
            (
                SamplingFields {
                    max_tokens: Some(0),
                    ..fields()
                },
                "max_tokens",
            ),
            (
                SamplingFields {
                    presence_penalty: Some(3.0),
                    ..fields()
                },
                "presence_penalty",
            ),
            (
                SamplingFields {
                    min_tokens: Some(50),
                    max_tokens: Some(10),
                    ..fields()
                },
                "min_tokens",
            ),
            (
                SamplingFields {
                    temperature: Some(f32::NAN),
                    ..fields()
                },
                "temperature",
            ),
            (
                SamplingFields {
                    temperature: Some(2.5),
                    ..fields()
                },
                "temperature",
            ),
            (
                SamplingFields {
                    n: Some(17),
                    ..fields()
                },
                "n",
            ),
            (
                SamplingFields {
                    n: Some(-1),
                    ..fields()
                },
                "n",
            ),
            (
                SamplingFields {
                    stop: Some(StopField::Many(vec!["x".into(); 17])),
                    ..fields()
                },
                "stop",
            ),
        ];
        for (f, field) in cases {
            let e = sampling_params(&f, 5, 100).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some(field), "{}", e.message);
        }
    }

    #[test]
    fn chat_names_are_reported() {
        let f = SamplingFields {
            logprobs: Some(21),
            names: FieldNames {
                prompt: "messages",
                max_tokens: "max_completion_tokens",
                logprobs: "top_logprobs",
            },
            ..fields()
        };
        let e = sampling_params(&f, 5, 100).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        let f = SamplingFields {
            top_logprobs_without_logprobs: true,
            ..fields()
        };
        let e = sampling_params(&f, 5, 100).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
    }

    #[test]
    fn budget_overflow_is_400() {
        let f = SamplingFields {
            max_tokens: Some(50),
            ..fields()
        };
        let e = sampling_params(&f, 60, 100).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(e.message.contains("110"), "{}", e.message);
    }
}
