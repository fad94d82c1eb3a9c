"""Writes the hand-made seed inputs of fuzz/corpus that are binary (a small GGUF with a
tokenizer and chat template, a small safetensors file). Run with the tools venv
(scripts/setup.sh installs gguf and numpy there):
    $CORVID_HOME/venv-tools/bin/python fuzz/seeds.py
"""

import json
import struct
from pathlib import Path

import gguf
import numpy as np

HERE = Path(__file__).parent / "corpus"
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def gguf_seed(path, quantized):
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_context_length(64)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    tokens = ["a", "b", "Ġ", "ab", "Ġa", "<|im_start|>", "<|im_end|>"]
    w.add_token_list(tokens)
    w.add_token_types([1, 1, 1, 1, 1, 3, 3])
    w.add_token_merges(["a b", "Ġ a"])
    w.add_bos_token_id(5)
    w.add_eos_token_id(6)
    w.add_chat_template(TEMPLATE)
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(1, 32))
    if quantized:
        w.add_tensor(
            "output.weight",
            np.zeros((1, 34), dtype=np.uint8),
            raw_dtype=gguf.GGMLQuantizationType.Q8_0,
        )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors_seed(path):
    tensors = {
        "model.embed_tokens.weight": ("F16", [2, 4], np.ones(8, np.float16).tobytes()),
        "model.norm.weight": ("F32", [4], np.arange(4, dtype=np.float32).tobytes()),
        "model.layers.0.self_attn.q_proj.weight": ("BF16", [2, 2], b"\x80\x3f" * 4),
    }
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


gguf_seed(HERE / "gguf" / "tokenizer_and_f32.gguf", False)
gguf_seed(HERE / "gguf" / "q8_0_tensor.gguf", True)
safetensors_seed(HERE / "safetensors" / "three_dtypes.safetensors")
