//! The offline batch API, shaped like vLLM's:
//! `LLM::new(EngineArgs { .. })?.generate(&prompts, &SamplingParams { .. })`.

use crate::error::EngineError;
use crate::handle::{EngineHandle, PromptInput};
use crate::output::{FinishReason, RequestOutput, TokenLogprob};
use crate::params::{EngineArgs, SamplingParams};

/// One generated sample.
#[derive(Clone, Debug, Default)]
pub struct CompletionOutput {
    /// Which of the `n` samples.
    pub index: usize,
    /// Generated text.
    pub text: String,
    /// Generated token ids.
    pub token_ids: Vec<u32>,
    /// Why it stopped.
    pub finish_reason: Option<FinishReason>,
    /// Per-token logprobs, when requested.
    pub logprobs: Vec<TokenLogprob>,
}

impl CompletionOutput {
    /// The `n` empty samples of one request, by index, for [`CompletionOutput::absorb`]
    /// to fill.
    pub fn for_request(n: usize) -> Vec<Self> {
        (0..n)
            .map(|index| Self {
                index,
                ..Self::default()
            })
            .collect()
    }

    /// Adds one streamed update of this sample (text, tokens, logprobs, and the finish
    /// reason on the last one).
    pub fn absorb(&mut self, o: RequestOutput) {
        self.text.push_str(&o.text);
        self.token_ids.extend(o.token_ids);
        self.logprobs.extend(o.logprobs);
        if o.finish_reason.is_some() {
            self.finish_reason = o.finish_reason;
        }
    }
}

/// The result for one prompt.
#[derive(Clone, Debug)]
pub struct GenerationOutput {
    /// The prompt as given.
    pub prompt: String,
    /// Its token ids.
    pub prompt_token_ids: Vec<u32>,
    /// Its samples, by index.
    pub outputs: Vec<CompletionOutput>,
}

/// Prompt token ids and the samples generated for them.
type PromptResult = (Vec<u32>, Vec<CompletionOutput>);

/// An engine for offline batch generation.
pub struct LLM {
    engine: EngineHandle,
}

impl LLM {
    /// Loads the model and starts the engine.
    pub fn new(args: EngineArgs) -> Result<Self, EngineError> {
        Ok(Self {
            engine: EngineHandle::start(args, None)?,
        })
    }

    /// Wraps a running engine.
    pub fn from_engine(engine: EngineHandle) -> Self {
        Self { engine }
    }

    /// The underlying engine.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Generates for every prompt, all submitted at once so they batch together;
    /// results come back in input order.
    pub fn generate<S: AsRef<str>>(
        &self,
        prompts: &[S],
        params: &SamplingParams,
    ) -> Result<Vec<GenerationOutput>, EngineError> {
        self.generate_observed(prompts, params, &mut || {})
    }

    /// [`LLM::generate`] calling `on_prompt_done` as each prompt's samples finish (in
    /// input order), so a caller can show progress; the library draws nothing itself.
    pub fn generate_observed<S: AsRef<str>>(
        &self,
        prompts: &[S],
        params: &SamplingParams,
        on_prompt_done: &mut dyn FnMut(),
    ) -> Result<Vec<GenerationOutput>, EngineError> {
        let inputs: Vec<PromptInput> = prompts
            .iter()
            .map(|p| PromptInput::Text(p.as_ref().to_string()))
            .collect();
        self.run(inputs, params, on_prompt_done).map(|outs| {
            outs.into_iter()
                .zip(prompts)
                .map(|((ids, outputs), p)| GenerationOutput {
                    prompt: p.as_ref().to_string(),
                    prompt_token_ids: ids,
                    outputs,
                })
                .collect()
        })
    }

    /// Generates from token-id prompts.
    pub fn generate_tokens(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
    ) -> Result<Vec<Vec<CompletionOutput>>, EngineError> {
        let inputs = prompts.iter().cloned().map(PromptInput::Tokens).collect();
        Ok(self
            .run(inputs, params, &mut || {})?
            .into_iter()
            .map(|(_, o)| o)
            .collect())
    }

    fn run(
        &self,
        inputs: Vec<PromptInput>,
        params: &SamplingParams,
        on_prompt_done: &mut dyn FnMut(),
    ) -> Result<Vec<PromptResult>, EngineError> {
        let mut streams = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            streams.push(self.engine.add_request(
                format!("offline-{i}-{}", uniq()),
                input,
                params.clone(),
            )?);
        }
        let mut results = Vec::with_capacity(streams.len());
        for mut stream in streams {
            let mut outs = CompletionOutput::for_request(params.n);
            while let Some(o) = stream.next_blocking() {
                outs[o.index].absorb(o);
            }
            on_prompt_done();
            results.push((stream.prompt_token_ids.clone(), outs));
        }
        Ok(results)
    }
}

fn uniq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
