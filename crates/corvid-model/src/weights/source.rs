//! Where tensors come from: a GGUF file or a Hugging Face safetensors folder, behind one
//! interface that speaks GGUF tensor names (`blk.3.attn_q.weight`).

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use corvid_kernels::GgmlType;
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

impl RawTensor<'_> {
    /// An error about this tensor.
    pub fn error(&self, msg: impl Into<String>) -> ModelError {
        ModelError::BadTensor {
            file: self.file.to_path_buf(),
            tensor: self.name.clone(),
            msg: msg.into(),
        }
    }
}

/// A store of named tensors.
pub trait TensorSource {
    /// The tensor with this GGUF-style name, or `None` if absent.
    fn get(&self, name: &str) -> Result<Option<RawTensor<'_>>>;

    /// Where the weights live, for messages.
    fn location(&self) -> &Path;

    /// The tensor, or an error naming the file and the missing tensor.
    fn require(&self, name: &str) -> Result<RawTensor<'_>> {
        self.get(name)?.ok_or_else(|| ModelError::MissingTensor {
            file: self.location().to_path_buf(),
            tensor: name.to_string(),
        })
    }
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
/// `model.safetensors.index.json`.
pub struct SafetensorsDir {
    dir: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    index: HashMap<String, usize>,
}

impl SafetensorsDir {
    /// Opens every safetensors file of the folder and indexes their tensor names.
    pub fn open(dir: &Path) -> Result<Self> {
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
        })
    }
}

/// Maps a GGUF tensor name to its Hugging Face name.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, suffix) = rest.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

impl TensorSource for SafetensorsDir {
    fn get(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        let Some(hf) = hf_name(name) else {
            return Ok(None);
        };
        let Some(&i) = self.index.get(&hf) else {
            return Ok(None);
        };
        let (path, mmap) = &self.files[i];
        let st = SafeTensors::deserialize(mmap).map_err(|e| ModelError::Format {
            file: path.clone(),
            msg: format!("invalid safetensors: {e}"),
        })?;
        let view = st.tensor(&hf).map_err(|e| ModelError::BadTensor {
            file: path.clone(),
            tensor: hf.clone(),
            msg: e.to_string(),
        })?;
        let ty = match view.dtype() {
            Dtype::F32 => GgmlType::F32,
            Dtype::F16 => GgmlType::F16,
            Dtype::BF16 => GgmlType::BF16,
            other => {
                return Err(ModelError::BadTensor {
                    file: path.clone(),
                    tensor: hf,
                    msg: format!("unsupported dtype {other:?}"),
                })
            }
        };
        // The view borrows the parsed header; re-slice the mmap for the owner's lifetime.
        let data = view.data();
        let start = data.as_ptr() as usize - mmap.as_ptr() as usize;
        Ok(Some(RawTensor {
            name: name.to_string(),
            file: path,
            dims: view.shape().iter().rev().copied().collect(),
            ty,
            data: &mmap[start..start + data.len()],
        }))
    }

    fn location(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::hf_name;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_name("blk.12.attn_q.bias").unwrap(),
            "model.layers.12.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").unwrap(),
            "model.layers.0.mlp.down_proj.weight"
        );
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert!(hf_name("blk.0.unknown.weight").is_none());
    }
}
