//! A Python `corvid.SamplingParams` read into the engine's [`SamplingParams`] and checked
//! by [`SamplingParams::validate`], the one place the limits live: Python holds the
//! values, Rust decides whether they are valid. Only what Rust's types cannot hold is
//! refused here (a negative count), and vLLM's spellings are mapped (`top_k` -1 or 0
//! means all tokens, `stop` may be one string).

use crate::errors::invalid;
use corvid_engine::{InvalidParam, SamplingParams};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Raises `ValueError` naming the field if `params` would be refused by the engine.
#[pyfunction]
pub fn check_sampling_params(params: &Bound<'_, PyAny>) -> PyResult<()> {
    from_py(params).map(|_| ())
}

/// The engine's sampling parameters for a Python `SamplingParams`, validated.
pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<SamplingParams> {
    let top_k = match opt_int(obj, "top_k")? {
        None | Some(-1) | Some(0) => None,
        Some(k) if k > 0 => Some(k as usize),
        Some(k) => {
            return Err(invalid(InvalidParam::new(
                "top_k",
                format!("must be -1 or 0 (all tokens) or a positive count, got {k}."),
            )))
        }
    };
    let params = SamplingParams {
        n: count(obj, "n")?,
        temperature: float(obj, "temperature")?,
        top_p: float(obj, "top_p")?,
        top_k,
        min_p: float(obj, "min_p")?,
        repetition_penalty: float(obj, "repetition_penalty")?,
        presence_penalty: float(obj, "presence_penalty")?,
        frequency_penalty: float(obj, "frequency_penalty")?,
        seed: opt_count(obj, "seed")?.map(|s| s as u64),
        max_tokens: opt_count(obj, "max_tokens")?,
        min_tokens: count(obj, "min_tokens")?,
        stop: strings(obj, "stop")?,
        stop_token_ids: token_ids(obj, "stop_token_ids")?,
        ignore_eos: flag(obj, "ignore_eos")?,
        logprobs: opt_count(obj, "logprobs")?,
        skip_special_tokens: flag(obj, "skip_special_tokens")?,
    };
    params.validate().map_err(invalid)?;
    Ok(params)
}

/// `TypeError` naming the field whose value has the wrong type.
fn wrong_type(field: &str, e: PyErr) -> PyErr {
    PyTypeError::new_err(format!("`{field}`: {e}"))
}

fn attr<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<Bound<'py, PyAny>> {
    obj.getattr(field)
}

fn float(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<f32> {
    let v: f64 = attr(obj, field)?
        .extract()
        .map_err(|e| wrong_type(field, e))?;
    Ok(v as f32)
}

fn flag(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    attr(obj, field)?
        .extract()
        .map_err(|e| wrong_type(field, e))
}

fn opt_int(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Option<i64>> {
    attr(obj, field)?
        .extract()
        .map_err(|e| wrong_type(field, e))
}

fn opt_count(obj: &Bound<'_, PyAny>, field: &'static str) -> PyResult<Option<usize>> {
    opt_int(obj, field)?
        .map(|v| non_negative(field, v))
        .transpose()
}

fn count(obj: &Bound<'_, PyAny>, field: &'static str) -> PyResult<usize> {
    let v: i64 = attr(obj, field)?
        .extract()
        .map_err(|e| wrong_type(field, e))?;
    non_negative(field, v)
}

fn non_negative(field: &'static str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| {
        invalid(InvalidParam::new(
            field,
            format!("must not be negative, got {v}."),
        ))
    })
}

/// `None`, one string, or a sequence of strings.
fn strings(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    let v = attr(obj, field)?;
    if v.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(vec![s.to_string()]);
    }
    v.extract().map_err(|e| wrong_type(field, e))
}

/// `None` or a sequence of token ids.
fn token_ids(obj: &Bound<'_, PyAny>, field: &'static str) -> PyResult<Vec<u32>> {
    let v = attr(obj, field)?;
    if v.is_none() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = v.extract().map_err(|e| wrong_type(field, e))?;
    ids.into_iter()
        .map(|t| {
            u32::try_from(t).map_err(|_| {
                invalid(InvalidParam::new(
                    field,
                    format!("holds {t}, which is not a token id."),
                ))
            })
        })
        .collect()
}
