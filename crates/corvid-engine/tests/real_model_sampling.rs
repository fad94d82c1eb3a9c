//! Real-model tier (skips, visibly, without the installed model; fails under CI=true).
//! Sampling behaviour end to end on the real default model: seeds, stop strings,
//! max/min tokens, EOS handling, n > 1 and logprobs.

mod common;

use common::*;
use corvid_engine::{FinishReason, SamplingParams, LLM};
use std::sync::Arc;

/// An offline engine over the default model; `None` (`test` skips) when it is absent.
fn llm(test: &str) -> Option<LLM> {
    let model = model(test)?;
    Some(LLM::from_engine(start(
        model.clone(),
        args_with_blocks(model.as_ref(), 2048, 16),
        Arc::default(),
    )))
}

#[test]
fn seeded_sampling_is_reproducible_across_batch_compositions() {
    let Some(llm) = llm("seeded_sampling_is_reproducible_across_batch_compositions") else {
        return;
    };
    let p = SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        seed: Some(1234),
        max_tokens: Some(20),
        ignore_eos: true,
        ..Default::default()
    };
    let target = "Write a short poem about spring.".to_string();
    let alone = llm.generate(std::slice::from_ref(&target), &p).unwrap()[0].outputs[0]
        .token_ids
        .clone();
    let mut batch = vec![
        "Tell me about the moon.".to_string(),
        target.clone(),
        "1, 2, 3,".to_string(),
    ];
    let others = SamplingParams {
        seed: None,
        ..p.clone()
    };
    let _ = llm.generate(&batch[..1], &others).unwrap();
    let together = llm.generate(&batch, &p).unwrap()[1].outputs[0]
        .token_ids
        .clone();
    assert_eq!(alone, together);
    batch.reverse();
    let reordered = llm.generate(&batch, &p).unwrap()[1].outputs[0]
        .token_ids
        .clone();
    assert_eq!(alone, reordered);
    let other_seed = SamplingParams {
        seed: Some(99),
        ..p
    };
    let different = llm.generate(&[target], &other_seed).unwrap()[0].outputs[0]
        .token_ids
        .clone();
    assert_ne!(
        alone, different,
        "a different seed should give a different sample"
    );
}

#[test]
fn max_tokens_and_ignore_eos() {
    let Some(llm) = llm("max_tokens_and_ignore_eos") else {
        return;
    };
    let p = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(7)
    };
    let out = &llm.generate(&["Hello"], &p).unwrap()[0].outputs[0];
    assert_eq!(out.token_ids.len(), 7);
    assert_eq!(out.finish_reason, Some(FinishReason::Length));
}

#[test]
fn eos_stops_and_min_tokens_defers_it() {
    let Some(llm) = llm("eos_stops_and_min_tokens_defers_it") else {
        return;
    };
    let tpl = llm.engine().tokenizer().chat_template().unwrap();
    let prompt = tpl
        .render(
            &[corvid_model::tokenizer::ChatMessage {
                role: "user".into(),
                content: "Say only the word yes.".into(),
            }],
            true,
        )
        .unwrap();
    let free = &llm
        .generate(std::slice::from_ref(&prompt), &SamplingParams::greedy(64))
        .unwrap()[0]
        .outputs[0];
    assert_eq!(
        free.finish_reason,
        Some(FinishReason::Stop),
        "the chat answer should end with EOS"
    );
    let n = free.token_ids.len();
    assert!(n < 64);
    // The EOS token is reported but not rendered as text.
    assert!(!free.text.contains("<|im_end|>"));
    let min = SamplingParams {
        min_tokens: n + 5,
        ..SamplingParams::greedy(64)
    };
    let longer = &llm.generate(&[prompt], &min).unwrap()[0].outputs[0];
    assert!(longer.token_ids.len() >= n + 5, "min_tokens must defer EOS");
}

#[test]
fn stop_strings_end_the_text_and_are_not_included() {
    let Some(llm) = llm("stop_strings_end_the_text_and_are_not_included") else {
        return;
    };
    let greedy = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(40)
    };
    let full = llm
        .generate(&["The numbers from one to ten are: one, two,"], &greedy)
        .unwrap()[0]
        .outputs[0]
        .text
        .clone();
    // Pick a stop string from the middle of the greedy text.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() > 4, "need some text: {full:?}");
    let stop = words[3].to_string();
    let cut = full.find(&stop).unwrap();
    let p = SamplingParams {
        stop: vec![stop.clone()],
        ..greedy
    };
    let out = &llm
        .generate(&["The numbers from one to ten are: one, two,"], &p)
        .unwrap()[0]
        .outputs[0];
    assert_eq!(
        out.text,
        full[..cut],
        "text must end right before the stop string {stop:?}"
    );
    assert_eq!(out.finish_reason, Some(FinishReason::Stop));
}

#[test]
fn stop_token_ids_end_generation() {
    let Some(llm) = llm("stop_token_ids_end_generation") else {
        return;
    };
    let greedy = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(12)
    };
    let full = llm.generate(&["Count: 1 2 3"], &greedy).unwrap()[0].outputs[0]
        .token_ids
        .clone();
    let stop_tok = full[4];
    let p = SamplingParams {
        stop_token_ids: vec![stop_tok],
        ..greedy
    };
    let out = &llm.generate(&["Count: 1 2 3"], &p).unwrap()[0].outputs[0];
    let first = full.iter().position(|&t| t == stop_tok).unwrap();
    assert_eq!(out.token_ids, full[..=first]);
    assert_eq!(out.finish_reason, Some(FinishReason::Stop));
}

#[test]
fn n_samples_share_the_prompt_and_differ() {
    let Some(llm) = llm("n_samples_share_the_prompt_and_differ") else {
        return;
    };
    let p = SamplingParams {
        n: 4,
        temperature: 1.0,
        seed: Some(5),
        max_tokens: Some(12),
        ignore_eos: true,
        ..Default::default()
    };
    let out = &llm.generate(&["My favourite food is"], &p).unwrap()[0];
    assert_eq!(out.outputs.len(), 4);
    assert!(out.outputs.iter().all(|o| o.token_ids.len() == 12));
    let distinct: std::collections::HashSet<_> =
        out.outputs.iter().map(|o| o.token_ids.clone()).collect();
    assert!(
        distinct.len() > 1,
        "independent samples should not all agree"
    );
}

#[test]
fn logprobs_are_reported_for_every_token() {
    let Some(llm) = llm("logprobs_are_reported_for_every_token") else {
        return;
    };
    let p = SamplingParams {
        logprobs: Some(3),
        ignore_eos: true,
        ..SamplingParams::greedy(5)
    };
    let out = &llm.generate(&["The sky is"], &p).unwrap()[0].outputs[0];
    assert_eq!(out.logprobs.len(), 5);
    for (lp, &t) in out.logprobs.iter().zip(&out.token_ids) {
        assert_eq!(lp.token_id, t);
        assert_eq!(lp.top.len(), 3);
        // Greedy: the sampled token is the most likely one.
        assert_eq!(lp.top[0].0, t);
        assert!(lp.logprob <= 0.0 && (lp.logprob - lp.top[0].1).abs() < 1e-6);
    }
}
