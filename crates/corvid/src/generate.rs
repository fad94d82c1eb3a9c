//! `corvid generate`: offline generation for one prompt or a file of prompts.

use anyhow::{bail, Context, Result};
use corvid_engine::cli::EngineCliArgs;
use corvid_engine::{SamplingParams, LLM};
use corvid_model::tokenizer::ChatMessage;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Flags of `corvid generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    engine: EngineCliArgs,
    /// The prompt.
    #[arg(long, short)]
    prompt: Option<String>,
    /// A file of prompts: one per line, or JSONL with a "prompt" field per line.
    #[arg(long)]
    prompts_file: Option<PathBuf>,
    /// Wrap each prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Most tokens to generate per prompt.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    n: usize,
    /// Stop strings.
    #[arg(long)]
    stop: Vec<String>,
    /// Keep generating past the end-of-sequence token.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object per prompt instead of plain text.
    #[arg(long)]
    json: bool,
}

fn read_prompts(args: &GenerateArgs) -> Result<Vec<String>> {
    let mut prompts = Vec::new();
    if let Some(p) = &args.prompt {
        prompts.push(p.clone());
    }
    if let Some(path) = &args.prompts_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            if line.trim_start().starts_with('{') {
                let v: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: invalid JSON", path.display(), i + 1))?;
                let p = v["prompt"].as_str().with_context(|| {
                    format!("{}:{}: no \"prompt\" string", path.display(), i + 1)
                })?;
                prompts.push(p.to_string());
            } else {
                prompts.push(line.to_string());
            }
        }
    }
    if prompts.is_empty() {
        bail!("give --prompt or --prompts-file");
    }
    Ok(prompts)
}

/// Runs `corvid generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    let prompts = read_prompts(&args)?;
    let llm = LLM::new(args.engine.to_engine_args())?;
    let prompts = if args.chat {
        let tpl = llm
            .engine()
            .tokenizer()
            .chat_template()
            .context("this model has no chat template")?;
        prompts
            .iter()
            .map(|p| {
                let msg = ChatMessage {
                    role: "user".into(),
                    content: p.clone(),
                };
                tpl.render(&[msg], true).map_err(anyhow::Error::from)
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        prompts
    };
    let params = SamplingParams {
        n: args.n,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        max_tokens: Some(args.max_tokens),
        stop: args.stop.clone(),
        ignore_eos: args.ignore_eos,
        ..SamplingParams::default()
    };
    let bar = if prompts.len() > 1 {
        ProgressBar::new(prompts.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "generating [{bar:30}] {pos}/{len} prompts {elapsed} ({per_sec})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let outputs = llm.generate_observed(&prompts, &params, &mut || bar.inc(1))?;
    bar.finish_and_clear();
    for out in outputs {
        for c in &out.outputs {
            if args.json {
                let v = serde_json::json!({
                    "prompt": out.prompt,
                    "index": c.index,
                    "text": c.text,
                    "token_ids": c.token_ids,
                    "finish_reason": c.finish_reason.map(|f| f.as_str()),
                });
                println!("{v}");
            } else {
                println!("{}", c.text);
            }
        }
    }
    Ok(())
}
