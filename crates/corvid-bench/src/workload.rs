//! Workload definitions shared by the serving and offline benchmarks: every request's
//! prompt (built to an exact token count) and output length, derived from a seed only.
//!
//! * `fixed` — every prompt `--input-len` tokens, every output `--output-len` tokens.
//! * `sharegpt` — a synthetic mix shaped like ShareGPT conversations: prompt lengths
//!   log-uniform in 32–1024 tokens, outputs log-uniform in 16–512 (medians ≈181 and
//!   ≈91: skewed toward short requests with a long tail); `--prompt-len-range` and
//!   `--output-len-range` change the bounds (issue #3's offline mix is 32:512 / 32:256).
//! * `shared-prefix` — a chat workload: every request starts with the same
//!   `--system-prompt-len`-token system prompt followed by its own `--input-len`-token
//!   user message.

use crate::prompt::{Prompt, PromptBuilder, TokenCounter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Default shortest and longest prompt of the `sharegpt` mix, in tokens.
pub const SHAREGPT_PROMPT_RANGE: (usize, usize) = (32, 1024);
/// Default shortest and longest output of the `sharegpt` mix, in tokens.
pub const SHAREGPT_OUTPUT_RANGE: (usize, usize) = (16, 512);

/// Which workload to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Fixed input and output lengths.
    Fixed,
    /// Seeded synthetic mix shaped like ShareGPT.
    Sharegpt,
    /// Every request shares one long system prompt.
    SharedPrefix,
}

/// Workload flags, shared by `bench serve` and `bench throughput`.
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
pub struct WorkloadArgs {
    /// Workload shape.
    #[arg(long, value_enum, default_value = "fixed")]
    pub workload: WorkloadKind,
    /// Prompt tokens (`fixed`), or user-message tokens after the system prompt (`shared-prefix`).
    #[arg(long, default_value_t = 128)]
    pub input_len: usize,
    /// Output tokens (`fixed`, `shared-prefix`).
    #[arg(long, default_value_t = 128)]
    pub output_len: usize,
    /// Number of measured requests.
    #[arg(long, default_value_t = 64)]
    pub num_prompts: usize,
    /// Tokens of the shared system prompt (`shared-prefix`).
    #[arg(long, default_value_t = 512)]
    pub system_prompt_len: usize,
    /// Seed of prompt texts, lengths and arrival times.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompt lengths of the `sharegpt` mix, `MIN:MAX` tokens (log-uniform between).
    #[arg(long, value_parser = parse_range, default_value = "32:1024")]
    pub prompt_len_range: (usize, usize),
    /// Output lengths of the `sharegpt` mix, `MIN:MAX` tokens (log-uniform between).
    #[arg(long, value_parser = parse_range, default_value = "16:512")]
    pub output_len_range: (usize, usize),
}

/// Parses `MIN:MAX` with `1 <= MIN <= MAX`.
pub fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let (lo, hi) = s
        .split_once(':')
        .ok_or_else(|| format!("expected MIN:MAX, got {s:?}"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("{v:?} is not a token count"))
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if lo == 0 || lo > hi {
        return Err(format!("need 1 <= MIN <= MAX, got {lo}:{hi}"));
    }
    Ok((lo, hi))
}

impl Default for WorkloadArgs {
    fn default() -> Self {
        Self {
            workload: WorkloadKind::Fixed,
            input_len: 128,
            output_len: 128,
            num_prompts: 64,
            system_prompt_len: 512,
            seed: 0,
            prompt_len_range: SHAREGPT_PROMPT_RANGE,
            output_len_range: SHAREGPT_OUTPUT_RANGE,
        }
    }
}

/// One request of a workload.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestSpec {
    /// Shared system prompt (`shared-prefix` only).
    pub system: Option<Prompt>,
    /// The request's own prompt (the user message in chat form).
    pub user: Prompt,
    /// Tokens to generate (sent as `max_tokens` with `ignore_eos`).
    pub output_len: usize,
}

impl RequestSpec {
    /// Prompt tokens as built (system + user).
    pub fn prompt_len(&self) -> usize {
        self.system.as_ref().map_or(0, |s| s.token_ids.len()) + self.user.token_ids.len()
    }

    /// The prompt as one text, for `/v1/completions`.
    pub fn completion_text(&self) -> String {
        match &self.system {
            Some(s) => format!("{}\n\n{}", s.text, self.user.text),
            None => self.user.text.clone(),
        }
    }

    /// The prompt as token ids, for the offline engine (system ids then user ids, so
    /// the shared prefix is block-aligned and identical across requests).
    pub fn token_ids(&self) -> Vec<u32> {
        let mut ids = self
            .system
            .as_ref()
            .map_or_else(Vec::new, |s| s.token_ids.clone());
        ids.extend_from_slice(&self.user.token_ids);
        ids
    }
}

/// A log-uniform integer in `[lo, hi]`.
fn log_uniform(rng: &mut StdRng, (lo, hi): (usize, usize)) -> usize {
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    let x = (a + rng.gen::<f64>() * (b - a)).exp().round() as usize;
    x.clamp(lo, hi)
}

/// Builds the requests of a workload; the same arguments always give the same requests.
pub fn generate(args: &WorkloadArgs, tok: &dyn TokenCounter) -> Vec<RequestSpec> {
    generate_n(args, args.num_prompts, args.seed, tok)
}

/// Builds `n` requests of the workload shape from `seed` (warm-up requests use a
/// different seed than measured ones so they never pre-fill the prefix cache with
/// measured prompts, except the shared system prompt, which depends on `args.seed` only).
pub fn generate_n(
    args: &WorkloadArgs,
    n: usize,
    seed: u64,
    tok: &dyn TokenCounter,
) -> Vec<RequestSpec> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut builder = PromptBuilder::new(tok);
    let system = (args.workload == WorkloadKind::SharedPrefix).then(|| {
        let mut sys_rng = StdRng::seed_from_u64(args.seed ^ 0x5157_3e11_dead_beef);
        builder.build(&mut sys_rng, args.system_prompt_len.max(1))
    });
    (0..n)
        .map(|_| {
            let (input, output) = match args.workload {
                WorkloadKind::Fixed | WorkloadKind::SharedPrefix => {
                    (args.input_len, args.output_len)
                }
                WorkloadKind::Sharegpt => (
                    log_uniform(&mut rng, args.prompt_len_range),
                    log_uniform(&mut rng, args.output_len_range),
                ),
            };
            RequestSpec {
                system: system.clone(),
                user: builder.build(&mut rng, input.max(1)),
                output_len: output.max(1),
            }
        })
        .collect()
}
