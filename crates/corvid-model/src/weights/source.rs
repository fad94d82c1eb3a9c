//! Where tensors come from: a GGUF file or a Hugging Face safetensors folder, behind one
//! interface that speaks GGUF tensor names (`blk.3.attn_q.weight`).

use super::convert::{to_matrix, LoadQuantization};
use super::gptq_awq::{PackedLayer, PackedPart};
use super::quant_config::CheckpointQuant;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use corvid_kernels::{GgmlType, QMatrix};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One tensor's raw bytes as stored, with its type and ggml-order dims (`dims[0]` is
/// the row length).
pub struct RawTensor<'a> {
    /// GGUF-style name.
    pub name: String,
    /// File it was read from (for error messages).
    pub file: &'a Path,
    /// Dimensions, contiguous first.
    pub dims: Vec<usize>,
    /// Element type.
    pub ty: GgmlType,
    /// Raw little-endian bytes.
    pub data: &'a [u8],
}

impl<'a> RawTensor<'a> {
    /// An error about this tensor.
    pub fn error(&self, msg: impl Into<String>) -> ModelError {
        ModelError::BadTensor {
            file: self.file.to_path_buf(),
            tensor: self.name.clone(),
            msg: msg.into(),
        }
    }

    /// The first and second halves of the matrix's rows, as two tensors. GLM-4 stores its
    /// FFN's gate and up projections as one matrix (gate rows first), which llama.cpp's
    /// converter keeps fused as `ffn_up`; rows are whole blocks in every type, so a
    /// quantized matrix splits without being decoded.
    pub fn row_halves(&self) -> Result<[RawTensor<'a>; 2]> {
        let [cols, rows] = self.dims[..] else {
            return Err(self.error(format!("expected a matrix, found shape {:?}", self.dims)));
        };
        let half = match self.ty.bytes_for(cols).zip(self.ty.bytes_for(rows * cols)) {
            Some((row, all)) if rows.is_multiple_of(2) && all == self.data.len() => {
                row * (rows / 2)
            }
            _ => {
                return Err(self.error(format!(
                    "{} bytes of {} cannot be split into two halves of a {rows}x{cols} matrix",
                    self.data.len(),
                    self.ty
                )))
            }
        };
        let (first, second) = self.data.split_at(half);
        Ok(
            [("gate", first), ("up", second)].map(|(part, data)| RawTensor {
                name: format!("{} ({part} half)", self.name),
                file: self.file,
                dims: vec![cols, rows / 2],
                ty: self.ty,
                data,
            }),
        )
    }
}

/// A store of named tensors.
pub trait TensorSource {
    /// The tensor with this GGUF-style name, or `None` if absent.
    fn get(&self, name: &str) -> Result<Option<RawTensor<'_>>>;

    /// Where the weights live, for messages.
    fn location(&self) -> &Path;

    /// The matrix with this GGUF-style name as `rows × cols` in compute format, or `None`
    /// if absent. A source whose matrices are not single tensors (GPTQ/AWQ layers are
    /// four) overrides this; everything else converts the tensor [`Self::get`] returns.
    fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        quant: Option<LoadQuantization>,
    ) -> Result<Option<QMatrix>> {
        single_tensor_matrix(self, name, rows, cols, quant)
    }

    /// The tensor, or an error naming the file and the missing tensor.
    fn require(&self, name: &str) -> Result<RawTensor<'_>> {
        self.get(name)?.ok_or_else(|| ModelError::MissingTensor {
            file: self.location().to_path_buf(),
            tensor: name.to_string(),
        })
    }
}

/// The matrix stored as one tensor (every GGUF matrix; unpacked safetensors ones).
fn single_tensor_matrix(
    src: &(impl TensorSource + ?Sized),
    name: &str,
    rows: usize,
    cols: usize,
    quant: Option<LoadQuantization>,
) -> Result<Option<QMatrix>> {
    src.get(name)?
        .map(|t| to_matrix(&t, rows, cols, quant))
        .transpose()
}

impl TensorSource for GgufFile {
    fn get(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        Ok(self.tensors.get(name).map(|info| RawTensor {
            name: name.to_string(),
            file: self.path(),
            dims: info.dims.clone(),
            ty: info.ty,
            data: self.tensor_data(info),
        }))
    }

    fn location(&self) -> &Path {
        self.path()
    }
}

/// A Hugging Face model folder: one `model.safetensors` or shards listed in
/// `model.safetensors.index.json`, its linear layers plain or packed by GPTQ or AWQ.
pub struct SafetensorsDir {
    dir: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    index: HashMap<String, usize>,
    /// The folder's `quantization_config`, if its layers are GPTQ/AWQ-packed.
    quant: Option<CheckpointQuant>,
}

/// One tensor of a safetensors folder, by its HF name.
struct HfTensor<'a> {
    file: &'a Path,
    dtype: Dtype,
    /// Outermost dimension first, as safetensors stores it.
    shape: Vec<usize>,
    data: &'a [u8],
}

impl SafetensorsDir {
    /// Opens every safetensors file of the folder and indexes their tensor names; reads
    /// the folder's quantization config, refusing layouts corvid cannot unpack.
    pub fn open(dir: &Path) -> Result<Self> {
        let quant = CheckpointQuant::from_hf_dir(dir)?;
        let index_path = dir.join("model.safetensors.index.json");
        let names: Vec<PathBuf> = if index_path.exists() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| ModelError::io(&index_path, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Format {
                    file: index_path.clone(),
                    msg: e.to_string(),
                })?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| ModelError::Format {
                    file: index_path.clone(),
                    msg: "no weight_map".into(),
                })?;
            let mut files: Vec<PathBuf> = map
                .values()
                .filter_map(|f| f.as_str())
                .map(|f| dir.join(f))
                .collect();
            files.sort();
            files.dedup();
            files
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for path in names {
            let file = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            // SAFETY: weights are opened read-only and not modified while loaded.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
            let st = SafeTensors::deserialize(&mmap).map_err(|e| ModelError::Format {
                file: path.clone(),
                msg: format!("invalid safetensors: {e}"),
            })?;
            for name in st.names() {
                index.insert(name.to_string(), files.len());
            }
            files.push((path, mmap));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            index,
            quant,
        })
    }

    /// The tensor with this HF name, or `None` if the folder has none.
    fn hf_tensor(&self, hf: &str) -> Result<Option<HfTensor<'_>>> {
        let Some(&i) = self.index.get(hf) else {
            return Ok(None);
        };
        let (path, mmap) = &self.files[i];
        let st = SafeTensors::deserialize(mmap).map_err(|e| ModelError::Format {
            file: path.clone(),
            msg: format!("invalid safetensors: {e}"),
        })?;
        let view = st.tensor(hf).map_err(|e| ModelError::BadTensor {
            file: path.clone(),
            tensor: hf.to_string(),
            msg: e.to_string(),
        })?;
        // The view borrows the parsed header; re-slice the mmap for the owner's lifetime.
        let data = view.data();
        let start = data.as_ptr() as usize - mmap.as_ptr() as usize;
        Ok(Some(HfTensor {
            file: path,
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            data: &mmap[start..start + data.len()],
        }))
    }

    /// The HF prefix (`model.layers.0.self_attn.q_proj`) of the GPTQ/AWQ-packed layer
    /// behind a GGUF matrix name, if the folder stores it packed.
    fn packed_prefix(&self, name: &str) -> Option<String> {
        hf_names(name)
            .iter()
            .filter_map(|hf| hf.strip_suffix(".weight"))
            .find(|p| self.index.contains_key(&format!("{p}.qweight")))
            .map(str::to_string)
    }

    /// The packed layer `prefix` unpacked into corvid's block formats.
    fn packed_matrix(&self, prefix: &str, rows: usize, cols: usize) -> Result<QMatrix> {
        let Some(quant) = self.quant else {
            return Err(ModelError::Format {
                file: self.dir.join("config.json"),
                msg: format!(
                    "`{prefix}.qweight` is a GPTQ/AWQ-packed layer, but there is no \
                     quantization_config saying how it is packed"
                ),
            });
        };
        let part = |suffix: &str, dtype: Dtype| -> Result<Option<HfTensor<'_>>> {
            let name = format!("{prefix}.{suffix}");
            match self.hf_tensor(&name)? {
                Some(t) if t.dtype != dtype => Err(ModelError::BadTensor {
                    file: t.file.to_path_buf(),
                    tensor: name,
                    msg: format!("dtype {:?}, expected {dtype:?}", t.dtype),
                }),
                t => Ok(t),
            }
        };
        let need = |suffix: &str, dtype| {
            part(suffix, dtype)?.ok_or_else(|| ModelError::MissingTensor {
                file: self.dir.clone(),
                tensor: format!("{prefix}.{suffix}"),
            })
        };
        let (qweight, qzeros, scales) = (
            need("qweight", Dtype::I32)?,
            need("qzeros", Dtype::I32)?,
            need("scales", Dtype::F16)?,
        );
        let g_idx = part("g_idx", Dtype::I32)?;
        fn view<'t>(t: &'t HfTensor<'_>) -> PackedPart<'t> {
            PackedPart {
                shape: &t.shape,
                data: t.data,
            }
        }
        let layer = PackedLayer {
            name: format!("{prefix}.qweight"),
            file: qweight.file,
            qweight: view(&qweight),
            qzeros: view(&qzeros),
            scales: view(&scales),
            g_idx: g_idx.as_ref().map(view),
        };
        let unpacked = match quant {
            CheckpointQuant::Gptq {
                bits,
                group_size,
                zeros_minus_one,
            } => layer.unpack_gptq(rows, cols, bits, group_size, zeros_minus_one)?,
            CheckpointQuant::AwqGemm { group_size } => {
                layer.unpack_awq_gemm(rows, cols, group_size)?
            }
        };
        let data = unpacked.into_weight_data(&layer.name)?;
        Ok(QMatrix { rows, cols, data }.packed_for_cpu())
    }
}

/// Maps a GGUF tensor name to its Hugging Face names, in the order they are tried (the
/// inverse of llama.cpp's converter's table, where several HF names map to one GGUF name).
fn hf_names(gguf: &str) -> Vec<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return vec![f.to_string()];
    }
    let Some((layer, part, suffix)) = gguf.strip_prefix("blk.").and_then(|rest| {
        let (layer, rest) = rest.split_once('.')?;
        let (part, suffix) = rest.rsplit_once('.')?;
        Some((layer, part, suffix))
    }) else {
        return Vec::new();
    };
    let hf: &[&str] = match part {
        "attn_norm" => &["input_layernorm"],
        "attn_q" => &["self_attn.q_proj"],
        "attn_k" => &["self_attn.k_proj"],
        "attn_v" => &["self_attn.v_proj"],
        "attn_output" => &["self_attn.o_proj"],
        "attn_q_norm" => &["self_attn.q_norm"],
        "attn_k_norm" => &["self_attn.k_norm"],
        "ffn_norm" => &["post_attention_layernorm"],
        "ffn_gate" => &["mlp.gate_proj"],
        // GLM-4: the fused gate and up projections.
        "ffn_up" => &["mlp.up_proj", "mlp.gate_up_proj"],
        "ffn_down" => &["mlp.down_proj"],
        // GLM-4's norms after attention and after the FFN.
        "post_attention_norm" => &["post_self_attn_layernorm"],
        "post_ffw_norm" => &["post_mlp_layernorm"],
        _ => &[],
    };
    hf.iter()
        .map(|hf| format!("model.layers.{layer}.{hf}.{suffix}"))
        .collect()
}

impl TensorSource for SafetensorsDir {
    fn get(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        let Some((hf, t)) = hf_names(name)
            .into_iter()
            .map(|hf| Ok(self.hf_tensor(&hf)?.map(|t| (hf, t))))
            .find_map(Result::transpose)
            .transpose()?
        else {
            return match self.packed_prefix(name) {
                Some(prefix) => Err(ModelError::Unsupported(format!(
                    "`{prefix}` is a GPTQ/AWQ-packed layer where this architecture reads one \
                     tensor (such as GLM-4's fused gate_up_proj); corvid does not split packed layers"
                ))),
                None => Ok(None),
            };
        };
        let ty = match t.dtype {
            Dtype::F32 => GgmlType::F32,
            Dtype::F16 => GgmlType::F16,
            Dtype::BF16 => GgmlType::BF16,
            other => {
                return Err(ModelError::BadTensor {
                    file: t.file.to_path_buf(),
                    tensor: hf,
                    msg: format!("unsupported dtype {other:?}"),
                })
            }
        };
        Ok(Some(RawTensor {
            name: name.to_string(),
            file: t.file,
            dims: t.shape.iter().rev().copied().collect(),
            ty,
            data: t.data,
        }))
    }

    fn location(&self) -> &Path {
        &self.dir
    }

    fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        quant: Option<LoadQuantization>,
    ) -> Result<Option<QMatrix>> {
        match self.packed_prefix(name) {
            Some(prefix) => self.packed_matrix(&prefix, rows, cols).map(Some),
            None => single_tensor_matrix(self, name, rows, cols, quant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hf_names, RawTensor};
    use corvid_kernels::GgmlType;
    use std::path::Path;

    fn tensor<'a>(dims: &[usize], ty: GgmlType, data: &'a [u8]) -> RawTensor<'a> {
        RawTensor {
            name: "blk.0.ffn_up.weight".into(),
            file: Path::new("m.gguf"),
            dims: dims.to_vec(),
            ty,
            data,
        }
    }

    #[test]
    fn row_halves_split_whole_quantized_rows() {
        // Four Q8_0 rows of 64 values: two blocks of 34 bytes each.
        let data: Vec<u8> = (0..4 * 68).map(|i| i as u8).collect();
        let [gate, up] = tensor(&[64, 4], GgmlType::Q8_0, &data)
            .row_halves()
            .unwrap();
        assert_eq!(
            (gate.dims.clone(), up.dims.clone()),
            (vec![64, 2], vec![64, 2])
        );
        assert_eq!((gate.data, up.data), (&data[..136], &data[136..]));
        assert_eq!(up.name, "blk.0.ffn_up.weight (up half)");
        for (dims, len) in [
            (&[64, 3][..], 3 * 68),
            (&[64][..], 68),
            (&[64, 4][..], 4 * 68 - 1),
        ] {
            let err = tensor(dims, GgmlType::Q8_0, &data[..len])
                .row_halves()
                .err()
                .unwrap();
            assert!(err.to_string().contains("blk.0.ffn_up.weight"), "{err}");
        }
    }

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_names("blk.12.attn_q.bias"),
            ["model.layers.12.self_attn.q_proj.bias"]
        );
        assert_eq!(
            hf_names("blk.0.ffn_down.weight"),
            ["model.layers.0.mlp.down_proj.weight"]
        );
        assert_eq!(
            hf_names("blk.1.ffn_up.weight"),
            [
                "model.layers.1.mlp.up_proj.weight",
                "model.layers.1.mlp.gate_up_proj.weight"
            ]
        );
        assert_eq!(hf_names("output.weight"), ["lm_head.weight"]);
        assert!(hf_names("blk.0.unknown.weight").is_empty());
        assert!(hf_names("blk.weight").is_empty());
    }
}
