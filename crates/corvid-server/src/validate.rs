//! The validation stage: a request as written → a typed, checked request for the engine.
//!
//! Every range check names its field (the `param` of the 400). The prompt is tokenized
//! here, so the context-length check happens before anything is queued and the echo /
//! usage paths know the prompt's tokens.

use corvid_engine::SamplingParams;

use crate::error::ApiError;
use crate::protocol::SamplingFields;

/// Most top logprobs a request may ask for (OpenAI's limit).
pub const MAX_LOGPROBS: i64 = 20;
/// Most choices (`n`) one request may ask for.
pub const MAX_N: i64 = 16;

fn check_range(
    field: &str,
    v: Option<f32>,
    lo: f32,
    hi: f32,
    lo_open: bool,
) -> Result<(), ApiError> {
    if let Some(x) = v {
        let ok = x.is_finite() && (if lo_open { x > lo } else { x >= lo }) && x <= hi;
        if !ok {
            let open = if lo_open { "(" } else { "[" };
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must be in {open}{lo}, {hi}], got {x}."),
            ));
        }
    }
    Ok(())
}

/// Checks the sampling fields and builds [`SamplingParams`], given the prompt length and
/// the model's context length. A missing token budget means "up to the context end".
pub fn sampling_params(
    f: &SamplingFields,
    prompt_tokens: usize,
    max_model_len: usize,
) -> Result<SamplingParams, ApiError> {
    let d = SamplingParams::default();
    let n = f.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::invalid(
            "n",
            format!("`n` must be between 1 and {MAX_N}, got {n}."),
        ));
    }
    check_range("temperature", f.temperature, 0.0, 2.0, false)?;
    check_range("top_p", f.top_p, 0.0, 1.0, true)?;
    check_range("min_p", f.min_p, 0.0, 1.0, false)?;
    check_range("presence_penalty", f.presence_penalty, -2.0, 2.0, false)?;
    check_range("frequency_penalty", f.frequency_penalty, -2.0, 2.0, false)?;
    check_range("repetition_penalty", f.repetition_penalty, 0.0, 10.0, true)?;
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
    let logprobs = match f.logprobs {
        None => None,
        Some(k) if (0..=MAX_LOGPROBS).contains(&k) => Some(k as usize),
        Some(k) => {
            let field = f.logprobs_field;
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must be between 0 and {MAX_LOGPROBS}, got {k}."),
            ));
        }
    };
    if prompt_tokens == 0 {
        return Err(ApiError::invalid("prompt", "The prompt is empty."));
    }
    if prompt_tokens >= max_model_len {
        return Err(context_error(prompt_tokens, None, max_model_len));
    }
    let max_tokens = match f.max_tokens {
        None => max_model_len - prompt_tokens,
        Some(m) if m < 1 => {
            let field = f.max_tokens_field;
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must be at least 1, got {m}."),
            ));
        }
        Some(m) => {
            let m = usize::try_from(m).unwrap_or(usize::MAX);
            if prompt_tokens.saturating_add(m) > max_model_len {
                return Err(context_error(prompt_tokens, Some(m), max_model_len));
            }
            m
        }
    };
    let min_tokens = match f.min_tokens {
        None => 0,
        Some(m) if m >= 0 && (m as usize) <= max_tokens => m as usize,
        Some(m) => {
            return Err(ApiError::invalid(
                "min_tokens",
                format!(
                    "`min_tokens` must be between 0 and the token budget ({max_tokens}), got {m}."
                ),
            ))
        }
    };
    let params = SamplingParams {
        n: n as usize,
        temperature: f.temperature.unwrap_or(d.temperature),
        top_p: f.top_p.unwrap_or(d.top_p),
        top_k,
        min_p: f.min_p.unwrap_or(d.min_p),
        repetition_penalty: f.repetition_penalty.unwrap_or(d.repetition_penalty),
        presence_penalty: f.presence_penalty.unwrap_or(d.presence_penalty),
        frequency_penalty: f.frequency_penalty.unwrap_or(d.frequency_penalty),
        seed: f.seed.map(|s| s as u64),
        max_tokens: Some(max_tokens),
        min_tokens,
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
        logprobs,
        skip_special_tokens: f.skip_special_tokens.unwrap_or(true),
    };
    params.validate().map_err(|msg| {
        let field = msg
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        ApiError::invalid(field, msg)
    })?;
    Ok(params)
}

fn context_error(prompt: usize, max_tokens: Option<usize>, max_model_len: usize) -> ApiError {
    let message = match max_tokens {
        Some(m) => format!(
            "This model's maximum context length is {max_model_len} tokens. However, you requested {} tokens ({prompt} in the prompt, {m} for the completion). Please reduce the length of the prompt or the completion.",
            prompt + m
        ),
        None => format!(
            "This model's maximum context length is {max_model_len} tokens. However, your prompt has {prompt} tokens. Please reduce the length of the prompt."
        ),
    };
    let mut e = ApiError::invalid(
        if max_tokens.is_some() {
            "max_tokens"
        } else {
            "prompt"
        },
        message,
    );
    e.code = Some("context_length_exceeded");
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::StopField;
    use axum::http::StatusCode;

    fn fields() -> SamplingFields {
        SamplingFields {
            max_tokens_field: "max_tokens",
            logprobs_field: "logprobs",
            ..Default::default()
        }
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
        ];
        for (f, field) in cases {
            let e = sampling_params(&f, 5, 100).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some(field), "{}", e.message);
        }
    }

    #[test]
    fn context_overflow_is_400() {
        let e = sampling_params(&fields(), 100, 100).unwrap_err();
        assert_eq!(e.code, Some("context_length_exceeded"));
        let f = SamplingFields {
            max_tokens: Some(50),
            ..fields()
        };
        let e = sampling_params(&f, 60, 100).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(e.message.contains("110"), "{}", e.message);
    }
}
