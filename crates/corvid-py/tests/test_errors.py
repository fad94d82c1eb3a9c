"""Bad arguments raise the documented exceptions, and the LLM stays usable after each."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from conftest import MODEL, PROBE, assert_usable
from corvid import LLM, SamplingParams

# Each refused SamplingParams value, and the field its ValueError must name.
BAD_VALUES = [
    ({"top_p": 0}, "top_p"),
    ({"temperature": -1}, "temperature"),
    ({"temperature": 3.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"n": 0}, "n"),
    ({"n": -1}, "n"),
    ({"n": 17}, "n"),
    ({"top_k": -5}, "top_k"),
    ({"min_p": 2}, "min_p"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -3}, "max_tokens"),
    ({"min_tokens": 5, "max_tokens": 2}, "min_tokens"),
    ({"logprobs": 21}, "logprobs"),
    ({"stop": [""]}, "stop"),
    ({"stop": ["x"] * 17}, "stop"),
    ({"stop_token_ids": [-1]}, "stop_token_ids"),
    ({"seed": -1}, "seed"),
]


@pytest.mark.parametrize("kwargs,field", BAD_VALUES, ids=[f"{f}={v}" for (kw, f) in BAD_VALUES for v in [list(kw.values())[0]]])
def test_bad_sampling_value_is_a_value_error_naming_the_field(kwargs: Dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        SamplingParams(**kwargs)


@pytest.mark.parametrize("kwargs", [{"temperature": "hot"}, {"n": 1.5}, {"ignore_eos": "yes"}, {"best_of": 2}])
def test_wrong_type_or_unknown_field_is_a_type_error(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        SamplingParams(**kwargs)


def test_vllm_spellings_are_accepted() -> None:
    assert SamplingParams(top_k=-1).top_k == -1
    assert SamplingParams(stop="\n").stop == ["\n"]
    assert SamplingParams(max_tokens=None).max_tokens is None


def test_bad_generate_arguments_leave_the_llm_usable(llm: LLM, probe_text: str) -> None:
    greedy = SamplingParams(temperature=0, max_tokens=4)
    cases = [
        (ValueError, "`prompt` must not be empty", lambda: llm.generate("", greedy)),
        (ValueError, "maximum context length", lambda: llm.generate({"prompt_token_ids": [1] * 9000}, greedy)),
        (ValueError, "out of the vocabulary", lambda: llm.generate([[1, 2, 10**6]], greedy)),
        (ValueError, "not a token id", lambda: llm.generate([[1, -1]], greedy)),
        (ValueError, r"prompts\[1\]: `prompt` must not be empty", lambda: llm.generate([PROBE, "", PROBE], greedy)),
        (ValueError, "sampling_params: got 2 for 3 prompts", lambda: llm.generate([PROBE] * 3, [greedy] * 2)),
        (TypeError, "prompts", lambda: llm.generate(5, greedy)),
        (TypeError, "sampling_params", lambda: llm.generate(PROBE, {"temperature": 0})),
        (ValueError, "messages", lambda: llm.chat([])),
        (ValueError, "role", lambda: llm.chat([{"content": "hi"}])),
        (ValueError, "text content parts", lambda: llm.chat([{"role": "user", "content": [{"type": "image_url"}]}])),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
        assert_usable(llm, probe_text)
    # A value changed after construction is checked again when used.
    sp = SamplingParams(temperature=0, max_tokens=4)
    sp.temperature = 9
    with pytest.raises(ValueError, match="`temperature`"):
        llm.generate(PROBE, sp)
    assert_usable(llm, probe_text)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"foo": 1}, TypeError, "unexpected keyword argument 'foo'"),
        ({"gpu_memory_utilization": 0.9}, TypeError, "kv_cache_memory"),
        ({"tensor_parallel_size": 0}, ValueError, "tensor_parallel_size"),
        ({"dtype": "bfloat16"}, ValueError, "dtype.*bfloat16"),
        ({"dtype": "int7"}, ValueError, "dtype"),
        ({"kv_cache_memory": "lots"}, ValueError, "kv_cache_memory"),
        ({"kv_cache_dtype": "q4"}, ValueError, "kv_cache_dtype"),
        ({"quantization": "q3"}, ValueError, "quantization"),
        ({"block_size": 0}, ValueError, "block_size"),
        ({"model": "/nonexistent/model.gguf"}, FileNotFoundError, "no such file"),
        ({"tensor_parallel_size": 4}, ValueError, "tensor_parallel_size 4: .*3 KV heads.*cannot be divided among 4 shards"),
        ({"tensor_parallel_size": 2.0}, TypeError, "tensor_parallel_size must be an int"),
        # Checked in this order: tensor parallelism, then dtype, then the model.
        ({"model": "meta-llama/Llama-3-8b", "tensor_parallel_size": 0, "dtype": "bfloat16"}, ValueError, "tensor_parallel_size must be at least 1"),
        ({"model": "meta-llama/Llama-3-8b", "dtype": "bfloat16"}, ValueError, "dtype"),
    ],
)
def test_bad_llm_arguments(kwargs: Dict[str, Any], exc: type, match: str) -> None:
    kwargs = {"model": MODEL, "kv_cache_memory": "64MiB", **kwargs}
    with pytest.raises(exc, match=match):
        LLM(**kwargs)


def test_dtype_half_is_reported(default_model: str) -> None:
    with pytest.warns(UserWarning, match="float32 on CPU.*KV cache"):
        llm = LLM(model=default_model, dtype="half", kv_cache_memory="64MiB")
    assert (llm.config["dtype"], llm.config["kv_cache_dtype"]) == ("float32", "f16")
    q8 = LLM(model=default_model, dtype="float32", kv_cache_dtype="q8_0", kv_cache_memory="64MiB")
    assert q8.config["kv_cache_dtype"] == "q8_0"


def test_tokenizer_argument(default_model: str, probe_text: str) -> None:
    from conftest import greedy

    llm = LLM(model=default_model, tokenizer=default_model, kv_cache_memory="64MiB")
    assert greedy(llm, [PROBE], 12) == [probe_text]
    with pytest.raises(ValueError, match="hub id"):
        LLM(model=default_model, tokenizer="HuggingFaceTB/SmolLM2-135M-Instruct")
