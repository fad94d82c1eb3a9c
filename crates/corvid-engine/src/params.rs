//! What callers configure: engine arguments (vLLM's `EngineArgs`) and per-request
//! sampling parameters (vLLM's `SamplingParams`), each validated before use.

use crate::error::InvalidParam;
pub use corvid_model::weights::LoadQuantization;
use corvid_model::KvDtype;
use std::path::PathBuf;
use std::str::FromStr;

/// How much memory the KV block pool may take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KvCacheMemory {
    /// A fraction of physical RAM (like vLLM's `--gpu-memory-utilization`).
    Fraction(f64),
    /// An absolute number of bytes.
    Bytes(u64),
}

impl FromStr for KvCacheMemory {
    type Err = String;
    /// Accepts `0.1` (fraction of RAM), `536870912`, `512MiB`, `2GiB`, `1GB`, `300MB`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let err = || {
            format!("invalid KV cache memory `{s}` (use a fraction like 0.1 or a size like 512MiB)")
        };
        if let Ok(f) = s.parse::<f64>() {
            return if f > 0.0 && f < 1.0 {
                Ok(Self::Fraction(f))
            } else if f >= 1.0 && f.fract() == 0.0 {
                Ok(Self::Bytes(f as u64))
            } else {
                Err(err())
            };
        }
        let units: [(&str, u64); 6] = [
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
            ("GB", 1_000_000_000),
            ("MB", 1_000_000),
            ("KB", 1_000),
        ];
        for (suffix, mult) in units {
            if let Some(num) = s.strip_suffix(suffix) {
                let v: f64 = num.trim().parse().map_err(|_| err())?;
                if v <= 0.0 {
                    return Err(err());
                }
                return Ok(Self::Bytes((v * mult as f64) as u64));
            }
        }
        Err(err())
    }
}

impl KvCacheMemory {
    /// Bytes this budget means on this machine.
    pub fn bytes(&self) -> u64 {
        match *self {
            Self::Bytes(b) => b,
            Self::Fraction(f) => (total_memory_bytes() as f64 * f) as u64,
        }
    }
}

/// Element format of the KV cache (vLLM's `--kv-cache-dtype`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvCacheDtype {
    /// The default: f16.
    #[default]
    Auto,
    /// f16 elements.
    F16,
    /// i8 elements with one f32 scale per token and KV head: about half the bytes of
    /// f16, so about twice the blocks in the same `--kv-cache-memory`.
    Q8_0,
}

impl FromStr for KvCacheDtype {
    type Err = String;
    /// Accepts `auto`, `f16` (or `float16`, `half`) and `q8_0`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f16" | "float16" | "half" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            _ => Err(format!(
                "invalid KV cache dtype `{s}` (use auto, f16 or q8_0)"
            )),
        }
    }
}

impl KvCacheDtype {
    /// The storage format this choice means.
    pub fn resolve(self) -> KvDtype {
        match self {
            Self::Auto | Self::F16 => KvDtype::F16,
            Self::Q8_0 => KvDtype::Q8_0,
        }
    }

    /// The resolved format's name, as metrics and logs show it.
    pub fn name(self) -> &'static str {
        match self.resolve() {
            KvDtype::F16 => "f16",
            KvDtype::Q8_0 => "q8_0",
        }
    }
}

/// The `dtype` a caller asks for (vLLM's `--dtype` / `LLM(dtype=...)`). corvid computes
/// in float32 on CPU whatever is asked, and weights keep their file's format, so this
/// accepts vLLM's spellings and says what each one means here: `half`/`float16` ask for
/// 16-bit storage, which applies to the KV cache (f16); `bfloat16` has no counterpart
/// (no bf16 compute or storage) and is refused rather than silently changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dtype {
    /// `auto`: float32 compute, the KV cache as `kv_cache_dtype` says.
    #[default]
    Auto,
    /// `float32` (`float`, `f32`): what corvid computes in.
    Float32,
    /// `half` (`float16`, `f16`): float32 compute, an f16 KV cache.
    Float16,
}

impl FromStr for Dtype {
    type Err = String;
    /// Accepts vLLM's names (a `torch.` prefix too, as `str(torch.float16)` gives).
    fn from_str(s: &str) -> Result<Self, String> {
        let name = s.trim().to_ascii_lowercase();
        match name.strip_prefix("torch.").unwrap_or(&name) {
            "auto" => Ok(Self::Auto),
            "float32" | "float" | "f32" => Ok(Self::Float32),
            "half" | "float16" | "f16" => Ok(Self::Float16),
            "bfloat16" | "bf16" => Err(format!(
                "`{s}` is not supported: corvid has no bfloat16 compute or storage on CPU \
                 (use auto or float32; half keeps the KV cache in f16)"
            )),
            _ => Err(format!(
                "invalid dtype `{s}` (use auto, float32, or half/float16 for an f16 KV cache)"
            )),
        }
    }
}

impl Dtype {
    /// The KV cache format in force: an explicit `kv_cache_dtype` wins; otherwise
    /// `half` asks for f16 (the format `auto` already picks).
    pub fn kv_cache_dtype(self, kv: KvCacheDtype) -> KvCacheDtype {
        match (self, kv) {
            (Self::Float16, KvCacheDtype::Auto) => KvCacheDtype::F16,
            _ => kv,
        }
    }

    /// What the caller should be told about a 16-bit request: compute stays float32.
    pub fn note(self) -> Option<&'static str> {
        (self == Self::Float16).then_some(
            "corvid computes in float32 on CPU: dtype half/float16 applies to the KV cache, \
             stored as f16 (weights keep their file's format)",
        )
    }
}

fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(8 << 30, |kb| kb * 1024)
}

/// Engine configuration, named as vLLM names it.
#[derive(Clone, Debug)]
pub struct EngineArgs {
    /// A `.gguf` file or a Hugging Face model folder.
    pub model: PathBuf,
    /// Name reported in APIs and metrics (defaults to the model's file name).
    pub served_model_name: Option<String>,
    /// Longest prompt + output in tokens (defaults to the model's context length).
    pub max_model_len: Option<usize>,
    /// Most sequences in one batch.
    pub max_num_seqs: usize,
    /// Most tokens (prefill + decode) in one step.
    pub max_num_batched_tokens: usize,
    /// Tokens per KV block.
    pub block_size: usize,
    /// KV pool budget.
    pub kv_cache_memory: KvCacheMemory,
    /// KV cache element format.
    pub kv_cache_dtype: KvCacheDtype,
    /// Reuse KV blocks of shared prompt prefixes.
    pub enable_prefix_caching: bool,
    /// Naive baseline: one request at a time, no prefix cache.
    pub no_batching: bool,
    /// Quantize unquantized weights at load.
    pub quantization: Option<LoadQuantization>,
    /// Most requests allowed to wait; more are refused (HTTP 503).
    pub max_waiting_requests: usize,
    /// Record prefix-cache changes as [`crate::kv::KvCacheEvent`]s for the stats sink
    /// (vLLM's `enable_kv_cache_events`; the server publishes them over ZMQ).
    pub enable_kv_cache_events: bool,
    /// Shards the model's heads and FFN columns are split into, each on its own pinned
    /// share of the cores (vLLM's `tensor_parallel_size`). The KV pool, its blocks and
    /// its metrics are the same for every value: shards write disjoint heads of a block.
    pub tensor_parallel_size: usize,
    /// Commit every page of the KV pool at start, as llama.cpp (which clears its KV
    /// buffer) and vLLM (which allocates it on the device) do, instead of as blocks are
    /// first written, so a server's first burst of requests after a start pays no page
    /// faults (`corvid serve` sets it unless `--lazy-kv-cache`). Off by default: offline,
    /// memory grows with what is used.
    pub commit_kv_cache: bool,
}

impl EngineArgs {
    /// How the model is loaded for these arguments.
    pub fn load_options(&self) -> corvid_model::LoadOptions {
        corvid_model::LoadOptions {
            quantization: self.quantization,
            tensor_parallel_size: self.tensor_parallel_size,
        }
    }
}

impl Default for EngineArgs {
    fn default() -> Self {
        Self {
            model: corvid_model::default_model::default_model_path(),
            served_model_name: None,
            max_model_len: None,
            max_num_seqs: 64,
            max_num_batched_tokens: 1024,
            block_size: 16,
            kv_cache_memory: KvCacheMemory::Bytes(1 << 30),
            kv_cache_dtype: KvCacheDtype::Auto,
            enable_prefix_caching: true,
            no_batching: false,
            quantization: None,
            max_waiting_requests: 1024,
            enable_kv_cache_events: false,
            tensor_parallel_size: 1,
            commit_kv_cache: false,
        }
    }
}

/// Per-request generation controls (vLLM's `SamplingParams`).
#[derive(Clone, Debug)]
pub struct SamplingParams {
    /// Parallel samples for the prompt.
    pub n: usize,
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Drop tokens below `min_p` × the top probability (0 = off).
    pub min_p: f32,
    /// HF-style repetition penalty over prompt and output (1 = off).
    pub repetition_penalty: f32,
    /// OpenAI presence penalty over output tokens.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty over output tokens.
    pub frequency_penalty: f32,
    /// Seed of this request's random stream (same seed + prompt ⇒ same text).
    pub seed: Option<u64>,
    /// Most tokens to generate (default: up to the context length).
    pub max_tokens: Option<usize>,
    /// Fewest tokens to generate before EOS/stop can end the request.
    pub min_tokens: usize,
    /// Stop strings (not included in the output).
    pub stop: Vec<String>,
    /// Extra token ids that end generation.
    pub stop_token_ids: Vec<u32>,
    /// Keep generating past EOS.
    pub ignore_eos: bool,
    /// Return the sampled token's logprob and this many top alternatives.
    pub logprobs: Option<usize>,
    /// Leave special tokens out of the text.
    pub skip_special_tokens: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            n: 1,
            temperature: 1.0,
            top_p: 1.0,
            top_k: None,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            max_tokens: Some(16),
            min_tokens: 0,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            logprobs: None,
            skip_special_tokens: true,
        }
    }
}

/// Most parallel samples (`n`) one request may ask for; every caller (the HTTP API,
/// the offline API) is held to this one limit.
pub const MAX_N: usize = 16;
/// Most top logprobs a request may ask for (OpenAI's limit).
pub const MAX_LOGPROBS: usize = 20;
/// Most stop strings one request may carry (each is checked after every token).
pub const MAX_STOP_STRINGS: usize = 16;
/// Highest sampling temperature (OpenAI's limit; hotter is noise).
pub const MAX_TEMPERATURE: f32 = 2.0;

/// `Ok` when `x` is finite and in the range (`lo` excluded when `lo_open`, `hi` included).
fn check_range(
    field: &'static str,
    x: f32,
    lo: f32,
    hi: f32,
    lo_open: bool,
) -> Result<(), InvalidParam> {
    let ok = x.is_finite() && (if lo_open { x > lo } else { x >= lo }) && x <= hi;
    if ok {
        return Ok(());
    }
    let open = if lo_open { "(" } else { "[" };
    Err(InvalidParam::new(
        field,
        format!("must be in {open}{lo}, {hi}], got {x}."),
    ))
}

impl SamplingParams {
    /// Greedy decoding parameters.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_tokens: Some(max_tokens),
            ..Self::default()
        }
    }

    /// Checks every limit; the error names the offending field. The only place the
    /// sampling limits are enforced.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        let fail = |field, problem: String| Err(InvalidParam::new(field, problem));
        if !(1..=MAX_N).contains(&self.n) {
            return fail(
                "n",
                format!("must be between 1 and {MAX_N}, got {}.", self.n),
            );
        }
        check_range("temperature", self.temperature, 0.0, MAX_TEMPERATURE, false)?;
        check_range("top_p", self.top_p, 0.0, 1.0, true)?;
        if self.top_k == Some(0) {
            return fail("top_k", "must be at least 1 (omit it to disable).".into());
        }
        check_range("min_p", self.min_p, 0.0, 1.0, false)?;
        check_range("presence_penalty", self.presence_penalty, -2.0, 2.0, false)?;
        check_range(
            "frequency_penalty",
            self.frequency_penalty,
            -2.0,
            2.0,
            false,
        )?;
        check_range(
            "repetition_penalty",
            self.repetition_penalty,
            0.0,
            10.0,
            true,
        )?;
        if self.max_tokens == Some(0) {
            return fail("max_tokens", "must be at least 1, got 0.".into());
        }
        if let Some(m) = self.max_tokens.filter(|&m| self.min_tokens > m) {
            return fail(
                "min_tokens",
                format!(
                    "must be between 0 and the token budget ({m}), got {}.",
                    self.min_tokens
                ),
            );
        }
        if self.stop.iter().any(String::is_empty) {
            return fail("stop", "must not contain empty strings.".into());
        }
        if self.stop.len() > MAX_STOP_STRINGS {
            return fail(
                "stop",
                format!(
                    "must hold at most {MAX_STOP_STRINGS} strings, got {}.",
                    self.stop.len()
                ),
            );
        }
        if let Some(l) = self.logprobs.filter(|&l| l > MAX_LOGPROBS) {
            return fail(
                "logprobs",
                format!("must be between 0 and {MAX_LOGPROBS}, got {l}."),
            );
        }
        Ok(())
    }

    /// True when decoding is deterministic argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_memory_parses() {
        assert_eq!(
            "0.25".parse::<KvCacheMemory>().unwrap(),
            KvCacheMemory::Fraction(0.25)
        );
        assert_eq!(
            "512MiB".parse::<KvCacheMemory>().unwrap(),
            KvCacheMemory::Bytes(512 << 20)
        );
        assert_eq!(
            "1GB".parse::<KvCacheMemory>().unwrap(),
            KvCacheMemory::Bytes(1_000_000_000)
        );
        assert!("-1".parse::<KvCacheMemory>().is_err());
        assert!("lots".parse::<KvCacheMemory>().is_err());
    }

    #[test]
    fn dtype_maps_half_to_the_kv_cache_and_refuses_bfloat16() {
        assert_eq!("auto".parse::<Dtype>().unwrap(), Dtype::Auto);
        assert_eq!("torch.float16".parse::<Dtype>().unwrap(), Dtype::Float16);
        let half = "half".parse::<Dtype>().unwrap();
        assert_eq!(half.kv_cache_dtype(KvCacheDtype::Auto), KvCacheDtype::F16);
        assert_eq!(half.kv_cache_dtype(KvCacheDtype::Q8_0), KvCacheDtype::Q8_0);
        assert!(half.note().is_some() && Dtype::Float32.note().is_none());
        assert!("bfloat16"
            .parse::<Dtype>()
            .unwrap_err()
            .contains("bfloat16"));
        assert!("int7".parse::<Dtype>().is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let p = SamplingParams {
            top_p: 0.0,
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().field, "top_p");
        let many_stops = SamplingParams {
            stop: vec!["x".into(); MAX_STOP_STRINGS + 1],
            ..Default::default()
        };
        assert_eq!(many_stops.validate().unwrap_err().field, "stop");
        assert!(SamplingParams::default().validate().is_ok());
    }
}
