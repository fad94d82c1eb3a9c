//! A request's statistics are recorded before its answer reaches the client: a router,
//! an autoscaler or a test that reads `/metrics` right after a response must find that
//! request counted (its prefix-cache hits and its completion), not a step later.

mod common;

use common::*;
use corvid_engine::testing::{tiny_tokenizer, FakeLm};
use corvid_engine::{PromptInput, SamplingParams};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[test]
fn a_finished_request_is_counted_before_its_last_output_arrives() {
    let fake = FakeLm::new(&tiny_tokenizer("llama"));
    let rec = Arc::new(Recorder::default());
    let mut args = args_with_blocks(&fake, 64, 4);
    args.enable_prefix_caching = true;
    let engine = start_fake(args, rec.clone());
    let prompt: Vec<u32> = (100..140).collect();
    let params = SamplingParams::greedy(1);
    for round in 1..=20 {
        let mut stream = engine
            .add_request(
                format!("r{round}"),
                PromptInput::Tokens(prompt.clone()),
                params.clone(),
            )
            .unwrap();
        let mut cached = 0;
        while let Some(out) = stream.next_blocking() {
            if out.finish_reason.is_some() {
                // Read at once, as a client scraping after its response would.
                assert_eq!(
                    rec.finished.load(Ordering::SeqCst),
                    round,
                    "completion counted"
                );
                cached = out.cached_tokens;
                assert_eq!(
                    rec.cached_tokens.load(Ordering::SeqCst),
                    cached * (round - 1),
                    "prefix-cache hits counted"
                );
            }
        }
        assert_eq!(cached > 0, round > 1, "later rounds hit the prefix cache");
    }
}
