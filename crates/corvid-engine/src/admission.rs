//! Admission: whether a request may enter the engine (its prompt fits the vocabulary,
//! the context and the KV pool) and, once admitted, the `n` sequences it becomes.

use crate::config::EngineConfig;
use crate::error::{EngineError, InvalidParam};
use crate::output::{RequestOutput, TextTracker};
use crate::params::SamplingParams;
use crate::sequence::Sequence;
use corvid_model::tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Checks that every id is below `vocab_size` (field `prompt`).
pub fn check_token_ids(vocab_size: usize, ids: &[u32]) -> Result<(), InvalidParam> {
    match ids.iter().find(|&&t| t as usize >= vocab_size) {
        Some(t) => Err(InvalidParam::new(
            "prompt",
            format!("holds token id {t}, out of the vocabulary (size {vocab_size})."),
        )),
        None => Ok(()),
    }
}

/// Checks prompt token ids: not empty, in the vocabulary, short enough to leave room
/// for output in the context and in the KV pool.
pub fn check_prompt(config: &EngineConfig, ids: &[u32]) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Err(InvalidParam::new("prompt", "must not be empty.").into());
    }
    check_token_ids(config.vocab_size, ids)?;
    let fits_pool = config.kv_blocks_for(ids.len() + 1) <= config.usable_kv_blocks();
    if ids.len() >= config.max_model_len || !fits_pool {
        return Err(EngineError::PromptTooLong {
            prompt_tokens: ids.len(),
            max_model_len: config.max_model_len,
        });
    }
    Ok(())
}

/// The `n` sequences of an admitted request, keyed from `first_key` on, all sending to
/// `tx`; sample `i` of a seeded request uses seed `seed + i`.
pub fn new_sequences(
    request_id: &str,
    prompt: &[u32],
    params: SamplingParams,
    config: &EngineConfig,
    tokenizer: &Arc<Tokenizer>,
    first_key: u64,
    tx: &UnboundedSender<RequestOutput>,
) -> Vec<Sequence> {
    let max_tokens = params
        .max_tokens
        .unwrap_or(usize::MAX)
        .min(config.max_model_len - prompt.len());
    let params = Arc::new(params);
    let arrival = Instant::now();
    (0..params.n)
        .map(|index| {
            let rng = match params.seed {
                Some(s) => StdRng::seed_from_u64(s.wrapping_add(index as u64)),
                None => StdRng::from_entropy(),
            };
            let text = TextTracker::new(
                Arc::clone(tokenizer),
                params.skip_special_tokens,
                params.stop.clone(),
            );
            Sequence::new(
                first_key + index as u64,
                request_id.to_string(),
                index,
                prompt.to_vec(),
                max_tokens,
                Arc::clone(&params),
                rng,
                text,
                tx.clone(),
                arrival,
            )
        })
        .collect()
}
