//! A Hugging Face `model.safetensors`: its JSON header, and the tensors a load looks up.

use corvid_model::weights::convert::to_f32;
use corvid_model::weights::{SafetensorsDir, TensorSource};

/// Tensors every architecture corvid loads asks for, by their GGUF names.
const LOOKED_UP: [&str; 4] = [
    "token_embd.weight",
    "output_norm.weight",
    "blk.0.attn_q.weight",
    "blk.0.ffn_down.weight",
];

/// Opens `data` as the folder's only safetensors file and looks its tensors up and
/// converts them as a load would.
pub fn run(data: &[u8]) {
    let path = super::input::write("model.safetensors", data);
    let dir = path.parent().expect("scratch file has a folder");
    if let Ok(st) = SafetensorsDir::open(dir) {
        for name in LOOKED_UP {
            if let Ok(Some(t)) = st.get(name) {
                let _ = to_f32(&t);
            }
        }
    }
}
