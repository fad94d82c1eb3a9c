//! The LLaMA-family decoder (LLaMA 2/3, Mistral, SmolLM, TinyLlama) with the Qwen2
//! (QKV bias), Qwen3 (per-head Q/K RMSNorm) and Gemma 3 variations: RMSNorm, RoPE,
//! grouped-query attention over the paged KV cache, SwiGLU MLP, optionally tied
//! embeddings. Gemma 3 adds, in the same forward: embeddings scaled by √hidden, Q/K
//! norms, norms after attention and after the FFN, a GELU-tanh gated FFN, and local
//! layers that attend to a sliding window with their own RoPE base. GLM-4 combines
//! Qwen2's bias with Gemma's post-norms, rotates only part of each head, and stores its
//! gate and up projections fused.

use super::attention_tasks::AttentionTasks;
use super::load_progress::LoadProgress;
use super::tensor_parallel::{plan, shard_pools, AllReduce, ShardSpec};
use super::token_rows::{add_residual, gated_activation, norm_rows, QkPrep};
use crate::config::{Arch, ModelConfig};
use crate::error::{ModelError, Result};
use crate::kv_cache::{gcd, KvCache, KvGroups};
use crate::model::{CausalLm, Logits, SeqInput};
use crate::weights::convert::{to_matrix, to_vector};
use crate::weights::{LoadQuantization, TensorSource};
use corvid_kernels::attention::{KvLayout, KvStore};
use corvid_kernels::matmul::matmul_group;
use corvid_kernels::ops::{rms_norm, Rope};
use corvid_kernels::QMatrix;
use std::ops::Range;
use std::sync::{Mutex, RwLock};

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    bias: Option<[Vec<f32>; 3]>,
    qk_norm: Option<[Vec<f32>; 2]>,
    /// Gemma's RMSNorms of the attention output and of the FFN output, before each is
    /// added to the residual stream.
    post_norms: Option<[Vec<f32>; 2]>,
    /// Whether the layer attends to a sliding window (with the local RoPE).
    local: bool,
    /// Its KV group (which of a sequence's block tables it uses) and its store.
    kv_group: usize,
    kv_store: usize,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
}

impl Layer {
    /// Shard `s`'s part of the layer: the rows of its heads and FFN columns in the input
    /// projections, the matching columns of the output ones, the norms replicated.
    fn shard(&self, s: &ShardSpec, head_dim: usize) -> std::result::Result<Self, String> {
        let (q, kv) = (
            s.q_heads.start * head_dim..s.q_heads.end * head_dim,
            s.kv_heads.start * head_dim..s.kv_heads.end * head_dim,
        );
        let rows = |m: &QMatrix, r: &Range<usize>, name: &str| {
            m.slice(r.clone(), 0..m.cols)
                .map_err(|e| format!("{name}: {e}"))
        };
        let cols = |m: &QMatrix, c: &Range<usize>, name: &str| {
            m.slice(0..m.rows, c.clone())
                .map_err(|e| format!("{name}: {e}"))
        };
        Ok(Self {
            attn_norm: self.attn_norm.clone(),
            wq: rows(&self.wq, &q, "attn_q")?,
            wk: rows(&self.wk, &kv, "attn_k")?,
            wv: rows(&self.wv, &kv, "attn_v")?,
            bias: self.bias.as_ref().map(|[bq, bk, bv]| {
                [
                    bq[q.clone()].to_vec(),
                    bk[kv.clone()].to_vec(),
                    bv[kv.clone()].to_vec(),
                ]
            }),
            qk_norm: self.qk_norm.clone(),
            post_norms: self.post_norms.clone(),
            local: self.local,
            kv_group: self.kv_group,
            kv_store: self.kv_store,
            wo: cols(&self.wo, &q, "attn_output")?,
            ffn_norm: self.ffn_norm.clone(),
            w_gate: rows(&self.w_gate, &s.ffn, "ffn_gate")?,
            w_up: rows(&self.w_up, &s.ffn, "ffn_up")?,
            w_down: cols(&self.w_down, &s.ffn, "ffn_down")?,
        })
    }

    /// The widest tile the FFN matrices need slices on (see [`QMatrix::tile`]).
    fn ffn_step(&self) -> usize {
        let (a, b, c) = (
            self.w_gate.tile().0,
            self.w_up.tile().0,
            self.w_down.tile().1,
        );
        lcm(lcm(a, b), c)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

/// One tensor-parallel shard: its heads and FFN columns of every layer, and the pool its
/// layer loop runs on (`None` for the single shard of `tensor_parallel_size = 1`, which
/// runs on the model's pool exactly as without tensor parallelism).
struct Shard {
    spec: ShardSpec,
    layers: Vec<Layer>,
    pool: Option<rayon::ThreadPool>,
}

impl Shard {
    /// The pool of a shard of several (never called for the single shard).
    fn pool(&self) -> &rayon::ThreadPool {
        self.pool.as_ref().expect("a pool per shard of several")
    }
}

/// A loaded LLaMA/Qwen model.
pub struct Llama {
    config: ModelConfig,
    embed: QMatrix,
    /// One shard holding every head and FFN column, or the `tensor_parallel_size` shards.
    shards: Vec<Shard>,
    norm: Vec<f32>,
    /// `None` when the output projection is tied to the embedding.
    lm_head: Option<QMatrix>,
    rope: Rope,
    /// The local layers' RoPE, for models with sliding-window layers.
    rope_local: Option<Rope>,
    /// How the layers share the KV pool: each sequence brings one block table per group.
    kv_groups: KvGroups,
    /// The threads every step's kernels run on. Running the whole forward inside the
    /// pool (rather than injecting each matmul from the engine thread) keeps the
    /// workers hot between the ~200 kernels of a step instead of waking them each time.
    /// With several shards, only the embedding and the output projection run here.
    pool: rayon::ThreadPool,
}

impl Llama {
    /// Builds the model from any tensor source, showing progress over the layers, split
    /// into `tensor_parallel_size` shards.
    pub fn load(
        config: ModelConfig,
        src: &dyn TensorSource,
        quant: Option<LoadQuantization>,
        rope_freqs: Option<Vec<f32>>,
        tensor_parallel_size: usize,
    ) -> Result<Self> {
        let c = &config;
        let (h, q, kv, ff) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let mat = |name: &str, rows, cols| {
            src.matrix(name, rows, cols, quant)?
                .ok_or_else(|| ModelError::MissingTensor {
                    file: src.location().to_path_buf(),
                    tensor: name.to_string(),
                })
        };
        let vector = |name: &str, len| to_vector(&src.require(name)?, len);
        let bar = LoadProgress::new(
            src.location()
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            c.num_layers as u64 + 2,
        );
        let embed = mat("token_embd.weight", c.vocab_size, h)?;
        bar.inc();
        let groups = KvGroups::of(c);
        let layers = (0..c.num_layers)
            .map(|i| {
                let n = |part: &str| format!("blk.{i}.{part}");
                let bias = match c.arch {
                    Arch::Qwen2 | Arch::Glm4 => Some([
                        vector(&n("attn_q.bias"), q)?,
                        vector(&n("attn_k.bias"), kv)?,
                        vector(&n("attn_v.bias"), kv)?,
                    ]),
                    _ => None,
                };
                let qk_norm = match c.arch {
                    Arch::Qwen3 | Arch::Gemma3 => Some([
                        vector(&n("attn_q_norm.weight"), c.head_dim)?,
                        vector(&n("attn_k_norm.weight"), c.head_dim)?,
                    ]),
                    _ => None,
                };
                let post_norms = match c.arch {
                    Arch::Gemma3 | Arch::Glm4 => Some([
                        vector(&n("post_attention_norm.weight"), h)?,
                        vector(&n("post_ffw_norm.weight"), h)?,
                    ]),
                    _ => None,
                };
                let (w_gate, w_up) = match c.arch {
                    Arch::Glm4 => {
                        let [gate, up] = src.require(&n("ffn_up.weight"))?.row_halves()?;
                        (
                            to_matrix(&gate, ff, h, quant)?,
                            to_matrix(&up, ff, h, quant)?,
                        )
                    }
                    _ => (
                        mat(&n("ffn_gate.weight"), ff, h)?,
                        mat(&n("ffn_up.weight"), ff, h)?,
                    ),
                };
                let layer = Layer {
                    attn_norm: vector(&n("attn_norm.weight"), h)?,
                    wq: mat(&n("attn_q.weight"), q, h)?,
                    wk: mat(&n("attn_k.weight"), kv, h)?,
                    wv: mat(&n("attn_v.weight"), kv, h)?,
                    bias,
                    qk_norm,
                    post_norms,
                    local: c.layer_window(i).is_some(),
                    kv_group: groups.placement[i].0,
                    kv_store: groups.placement[i].1,
                    wo: mat(&n("attn_output.weight"), h, q)?,
                    ffn_norm: vector(&n("ffn_norm.weight"), h)?,
                    w_gate,
                    w_up,
                    w_down: mat(&n("ffn_down.weight"), h, ff)?,
                };
                bar.inc();
                Ok(layer)
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = vector("output_norm.weight", h)?;
        let lm_head = src.matrix("output.weight", c.vocab_size, h, quant)?;
        bar.inc();
        bar.finish();
        let freq_factors = rope_freqs.or_else(|| {
            c.rope_scaling
                .map(|s| s.freq_factors(c.rope_dims, c.rope_theta))
        });
        let rope = Rope::new(c.rope_dims, c.rope_theta, c.rope_style, freq_factors);
        let rope_local = c
            .sliding_window
            .map(|w| Rope::new(c.rope_dims, w.rope_theta, c.rope_style, None));
        Ok(Self {
            shards: shard(c, layers, tensor_parallel_size)?,
            kv_groups: groups,
            config,
            embed,
            norm,
            lm_head,
            rope,
            rope_local,
            pool: compute_pool()?,
        })
    }

    /// Tensor-parallel shards of this model (1 without tensor parallelism).
    pub fn tensor_parallel_size(&self) -> usize {
        self.shards.len()
    }

    /// Bytes the weights occupy in memory.
    pub fn weight_bytes(&self) -> usize {
        let l: usize = self
            .shards
            .iter()
            .flat_map(|s| &s.layers)
            .map(|l| {
                [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                    .iter()
                    .map(|m| m.nbytes())
                    .sum::<usize>()
            })
            .sum();
        l + self.embed.nbytes() + self.lm_head.as_ref().map_or(0, QMatrix::nbytes)
    }

    fn check(&self, batch: &[SeqInput<'_>], kv: &KvCache) -> Result<()> {
        let bs = kv.layout.block_size;
        let stores = self.kv_groups.layers_per_block;
        if kv.stores.len() != stores {
            return Err(ModelError::Input(format!(
                "a KV cache of {} stores per block for a model with {stores}",
                kv.stores.len()
            )));
        }
        for s in batch {
            let end = s.start_pos + s.tokens.len();
            if s.tokens.is_empty() {
                return Err(ModelError::Input("empty sequence in batch".into()));
            }
            if let Some(&t) = s
                .tokens
                .iter()
                .find(|&&t| t as usize >= self.config.vocab_size)
            {
                return Err(ModelError::Input(format!(
                    "token id {t} is outside the vocabulary"
                )));
            }
            if s.block_tables.len() != self.kv_groups.len() {
                return Err(ModelError::Input(format!(
                    "{} block tables for a model with {} KV groups",
                    s.block_tables.len(),
                    self.kv_groups.len()
                )));
            }
            for table in s.block_tables {
                if table.len() * bs < end {
                    return Err(ModelError::Input(format!(
                        "block table covers {} tokens, need {end}",
                        table.len() * bs
                    )));
                }
                if let Some(&b) = table.iter().find(|&&b| b as usize >= kv.num_blocks) {
                    return Err(ModelError::Input(format!(
                        "block {b} is outside the KV pool"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Splits the loaded `layers` into `tp` shards, each sliced on its own pinned pool (so on
/// a multi-socket machine its copy is first touched, and placed, on its own socket's
/// memory); one shard keeps the layers as they are.
fn shard(c: &ModelConfig, layers: Vec<Layer>, tp: usize) -> Result<Vec<Shard>> {
    if tp == 1 {
        let spec = plan(c, 1, 1)?.remove(0);
        return Ok(vec![Shard {
            spec,
            layers,
            pool: None,
        }]);
    }
    let step = layers.iter().map(Layer::ffn_step).fold(1, lcm);
    let specs = plan(c, tp, step)?;
    let pools = shard_pools(tp, compute_threads())?;
    let mut shards: Vec<Shard> = specs
        .into_iter()
        .zip(pools)
        .map(|(spec, pool)| Shard {
            spec,
            layers: Vec::with_capacity(layers.len()),
            pool: Some(pool),
        })
        .collect();
    for (i, layer) in layers.into_iter().enumerate() {
        for s in &mut shards {
            let part = s
                .pool()
                .install(|| layer.shard(&s.spec, c.head_dim))
                .map_err(|e| {
                    ModelError::Unsupported(format!("tensor_parallel_size {tp}: blk.{i}.{e}"))
                })?;
            s.layers.push(part);
        }
    }
    tracing::info!(
        "tensor parallel: {tp} shards of query heads {:?}, KV heads {:?}, FFN columns {:?}",
        shards
            .iter()
            .map(|s| s.spec.q_heads.clone())
            .collect::<Vec<_>>(),
        shards
            .iter()
            .map(|s| s.spec.kv_heads.clone())
            .collect::<Vec<_>>(),
        shards
            .iter()
            .map(|s| s.spec.ffn.clone())
            .collect::<Vec<_>>(),
    );
    Ok(shards)
}

/// Compute threads in all: `CORVID_NUM_THREADS`, else one per available core.
fn compute_threads() -> usize {
    std::env::var("CORVID_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The compute thread pool: [`compute_threads`] threads.
fn compute_pool() -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(compute_threads())
        .thread_name(|i| format!("corvid-compute-{i}"))
        .build()
        .map_err(|e| ModelError::Unsupported(format!("cannot start compute threads: {e}")))
}

/// Per-token bookkeeping for one step.
pub(super) struct TokenMeta {
    /// The token's sequence: its index in the batch.
    pub(super) seq: usize,
    /// The token's position in its sequence.
    pub(super) pos: usize,
}

/// What every shard of one step reads: the batch, each token's sequence and position,
/// and each token's cache slot in each KV group.
struct Step<'a, 'b> {
    batch: &'a [SeqInput<'b>],
    meta: Vec<TokenMeta>,
    slots: Vec<Vec<usize>>,
}

impl<'a, 'b> Step<'a, 'b> {
    fn new(batch: &'a [SeqInput<'b>], groups: usize, block_size: usize) -> Self {
        let meta: Vec<TokenMeta> = batch
            .iter()
            .enumerate()
            .flat_map(|(seq, s)| {
                (0..s.tokens.len()).map(move |i| TokenMeta {
                    seq,
                    pos: s.start_pos + i,
                })
            })
            .collect();
        let bs = block_size;
        let slots = (0..groups)
            .map(|g| {
                meta.iter()
                    .map(|m| batch[m.seq].block_tables[g][m.pos / bs] as usize * bs + m.pos % bs)
                    .collect()
            })
            .collect();
        Self { batch, meta, slots }
    }
}

/// The KV stores as the shards share them: each shard writes its own heads under the
/// write lock, then reads under the read lock (uncontended with one shard). Shards never
/// read heads another shard is writing in the same layer: their heads are disjoint, and a
/// replicated head is read only after the all-shard wait that follows its one writer.
type SharedStores<'a> = RwLock<&'a mut [KvStore]>;

impl CausalLm for Llama {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn forward(&self, batch: &[SeqInput<'_>], kv: &mut KvCache, logits: &mut Logits) -> Result<()> {
        self.check(batch, kv)?;
        let step = Step::new(batch, self.kv_groups.len(), kv.layout.block_size);
        let layout = kv.layout;
        let stores: SharedStores<'_> = RwLock::new(&mut kv.stores);
        let reduce = AllReduce::new(self.shards.len());
        if let [one] = self.shards.as_slice() {
            return self.pool.install(|| {
                let mut x = self.embed_tokens(batch);
                self.run_layers(one, 0, &step, &layout, &stores, &reduce, &mut x);
                self.logits(batch, &x, logits);
                Ok(())
            });
        }
        let x0 = self.pool.install(|| self.embed_tokens(batch));
        let out = Mutex::new(Vec::new());
        let run = |s: usize| {
            let _poison = reduce.poison_on_panic();
            let mut x = x0.clone();
            self.run_layers(&self.shards[s], s, &step, &layout, &stores, &reduce, &mut x);
            if s == 0 {
                *out.lock().expect("shard 0's output") = x;
            }
        };
        run_on_pools(&self.shards, 0, &run);
        let x = out.into_inner().expect("shard 0's output");
        self.pool.install(|| self.logits(batch, &x, logits));
        Ok(())
    }
}

/// Runs `run(s)` for every shard `s` from `first` on, each on its own pool, concurrently
/// (they meet at the all-reduce), and returns when all have finished.
fn run_on_pools(shards: &[Shard], first: usize, run: &(dyn Fn(usize) + Sync)) {
    match &shards[first..] {
        [] => {}
        [last] => last.pool().install(|| run(first)),
        [shard, ..] => shard.pool().in_place_scope(|scope| {
            scope.spawn(|_| run(first));
            run_on_pools(shards, first + 1, run);
        }),
    }
}

impl Llama {
    /// The tokens' embeddings: the residual stream entering the first layer.
    fn embed_tokens(&self, batch: &[SeqInput<'_>]) -> Vec<f32> {
        let h = self.config.hidden_size;
        let tokens = batch.iter().flat_map(|s| s.tokens);
        let mut x = vec![0.0f32; tokens.clone().count() * h];
        for (row, &tok) in x.chunks_exact_mut(h).zip(tokens) {
            self.embed.row_f32(tok as usize, row);
        }
        if self.config.arch == Arch::Gemma3 {
            let scale = (h as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        x
    }

    /// Every layer of shard `s` over the residual stream `x` (the whole of it, as every
    /// shard keeps it): the shard's heads and FFN columns, their partial projections
    /// summed over the shards after the attention output and after the FFN.
    #[allow(clippy::too_many_arguments)]
    fn run_layers(
        &self,
        shard: &Shard,
        s: usize,
        step: &Step<'_, '_>,
        layout: &KvLayout,
        stores: &SharedStores<'_>,
        reduce: &AllReduce,
        x: &mut [f32],
    ) {
        let c = &self.config;
        let spec = &shard.spec;
        let (meta, n, hd) = (&step.meta, step.meta.len(), c.head_dim);
        let (h, qd, kvd) = (
            c.hidden_size,
            spec.q_heads.len() * hd,
            spec.kv_heads.len() * hd,
        );
        let ff = spec.ffn.len();
        let bs = layout.block_size;
        let mut xn = vec![0.0f32; n * h];
        let (mut q, mut k, mut v) = (vec![0.0; n * qd], vec![0.0; n * kvd], vec![0.0; n * kvd]);
        let mut attn = vec![0.0f32; n * qd];
        let mut proj = vec![0.0f32; n * h];
        let (mut gate, mut up) = (vec![0.0f32; n * ff], vec![0.0f32; n * ff]);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut global = AttentionTasks::new(spec, hd, meta, bs, None);
        let mut local = c
            .sliding_window
            .map(|w| AttentionTasks::new(spec, hd, meta, bs, Some(w.size)));
        let replicated = self.shards.iter().any(|s| !s.spec.writes_kv);
        let mut round = 0;

        let eps = c.rms_norm_eps;
        if let Some(first) = shard.layers.first() {
            norm_rows(&mut xn, x, &first.attn_norm, eps);
        }
        for (i, layer) in shard.layers.iter().enumerate() {
            matmul_group(
                &xn,
                &mut [
                    (&layer.wq, &mut q),
                    (&layer.wk, &mut k),
                    (&layer.wv, &mut v),
                ],
            );
            let (rope, tasks) = match (&self.rope_local, &mut local) {
                (Some(rope), Some(tasks)) if layer.local => (rope, tasks),
                _ => (&self.rope, &mut global),
            };
            let prep = QkPrep {
                bias: layer.bias.as_ref(),
                qk_norm: layer.qk_norm.as_ref(),
                rope,
                head_dim: hd,
                widths: (qd, kvd),
                eps,
            };
            prep.apply(meta, &mut q, &mut k, &mut v);
            if spec.writes_kv {
                let mut all = stores.write().expect("KV stores");
                let slots = &step.slots[layer.kv_group];
                all[layer.kv_store].write_tokens(layout, slots, spec.kv_heads.start, &k, &v);
            }
            if replicated {
                reduce.wait();
            }
            tasks.run(
                layout,
                &stores.read().expect("KV stores")[layer.kv_store],
                step.batch,
                meta,
                layer.kv_group,
                &q,
                scale,
                &mut attn,
            );
            layer.wo.matmul(&attn, &mut proj);
            reduce.sum(s, round, &mut proj);
            round += 1;
            let post = layer.post_norms.as_ref();
            let ffn_in = Some((&mut xn[..], &layer.ffn_norm[..]));
            add_residual(x, &mut proj, h, post.map(|[a, _]| &a[..]), ffn_in, eps);

            matmul_group(
                &xn,
                &mut [(&layer.w_gate, &mut gate), (&layer.w_up, &mut up)],
            );
            gated_activation(&mut gate, &up, ff, c.arch == Arch::Gemma3);
            layer.w_down.matmul(&gate, &mut proj);
            reduce.sum(s, round, &mut proj);
            round += 1;
            let next = shard.layers.get(i + 1);
            let next_in = next.map(|l| (&mut xn[..], &l.attn_norm[..]));
            add_residual(x, &mut proj, h, post.map(|[_, f]| &f[..]), next_in, eps);
        }
    }

    /// The final norm and output projection of the last token of each sequence that
    /// wants logits, into `out`.
    fn logits(&self, batch: &[SeqInput<'_>], x: &[f32], out: &mut Logits) {
        let c = &self.config;
        let h = c.hidden_size;
        let mut last = Vec::new();
        let mut end = 0;
        for s in batch {
            end += s.tokens.len();
            if s.want_logits {
                last.extend_from_slice(&x[(end - 1) * h..end * h]);
            }
        }
        let logits = out.reset(last.len() / h);
        if logits.is_empty() {
            return;
        }
        rms_norm(&mut last, &self.norm, c.rms_norm_eps);
        self.lm_head
            .as_ref()
            .unwrap_or(&self.embed)
            .matmul(&last, logits);
        if let Some(cap) = c.final_logit_softcap {
            logits.iter_mut().for_each(|l| *l = cap * (*l / cap).tanh());
        }
    }
}
