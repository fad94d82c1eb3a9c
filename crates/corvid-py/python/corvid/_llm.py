"""`LLM`, the offline API with vLLM's shape, over corvid's Rust engine (`_corvid.Engine`).
This module turns vLLM's argument shapes into the engine's and its results into
`RequestOutput`s; every value is checked in Rust."""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _corvid, _progress
from ._outputs import RequestOutput, from_engine
from ._sampling import SamplingParams

_DEFAULTS = _corvid.engine_defaults()

PromptType = Union[str, List[int], Dict[str, Any]]
Message = Dict[str, Any]

# vLLM arguments that mean nothing here, and what to use instead.
_HINTS = {
    "gpu_memory_utilization": "use kv_cache_memory (a fraction of RAM like 0.2, or a size like '4GiB')",
    "swap_space": "corvid keeps no CPU swap of the KV cache; kv_cache_memory sizes the pool",
    "trust_remote_code": "corvid runs no model code; it reads .gguf files and Hugging Face folders",
}


class GenerationAborted(RuntimeError):
    """`LLM.abort()` stopped a `generate` or `chat` call. `outputs` holds what was
    generated until then (aborted samples have `finish_reason == "abort"`); the requests'
    KV blocks are free and the `LLM` stays usable."""

    def __init__(self, outputs: List[RequestOutput]) -> None:
        super().__init__("generation aborted by LLM.abort()")
        self.outputs = outputs


class LLM:
    """An engine for offline batch generation, as vLLM's `LLM`.

    Args:
        model: A .gguf file or a Hugging Face model folder (config.json, tokenizer.json,
            *.safetensors); "default" is the installed SmolLM2-135M-Instruct. Hub ids are
            refused: nothing is downloaded.
        tokenizer: Another .gguf file or Hugging Face folder to take the tokenizer from.
        dtype: "auto" or "float32" (corvid computes in float32 on CPU; weights keep
            their file's format), or "half"/"float16": float32 compute with an f16 KV
            cache, and a warning that says so. "bfloat16" is refused.
        quantization: Quantize unquantized (safetensors) weights at load: "q8_0",
            "q4_0", "q4_1", "q4_k" or "q5_k".
        max_model_len: Longest prompt + output in tokens (default: the model's context).
        max_num_seqs: Most sequences batched together.
        seed: Seed of the stream that seeds requests without their own `seed`; None
            draws from the OS.
        enable_prefix_caching: Reuse the KV blocks of shared prompt prefixes.
        kv_cache_memory: The KV pool: a fraction of RAM (0.1) or a size ("512MiB",
            "2GiB", or bytes).
        tensor_parallel_size: Shards the model's attention heads and FFN columns are
            split into, each computed by its own threads pinned to its own share of the
            cores, their partial sums added by an all-reduce in shared memory (vLLM's CPU
            tensor parallelism). At most the model's KV heads (uneven splits allowed:
            SmolLM2's 3 over 2 shards are 2 + 1), or a multiple of them up to its query
            heads (each KV head then replicated, as in vLLM). Greedy outputs match
            tensor_parallel_size=1 within float rounding. It pays on multi-socket
            machines; on a few cores of one socket it is slower (see BENCHMARKS.md).
        kv_cache_dtype: "auto" (f16), "f16" or "q8_0".
        max_num_batched_tokens: Most tokens (prefill + decode) per engine step.
        block_size: Tokens per KV block.

    Raises:
        TypeError: an unknown keyword argument (named) or a value of the wrong type.
        ValueError: a bad value (named), a hub id for `model`, a model file corvid
            cannot load, or a `tensor_parallel_size` that cannot split its heads.
        FileNotFoundError: `model` or `tokenizer` does not exist.
    """

    def __init__(
        self,
        model: Union[str, "os.PathLike[str]"],
        tokenizer: Optional[Union[str, "os.PathLike[str]"]] = None,
        dtype: Any = "auto",
        quantization: Optional[str] = None,
        max_model_len: Optional[int] = None,
        max_num_seqs: int = _DEFAULTS["max_num_seqs"],
        seed: Optional[int] = 0,
        enable_prefix_caching: bool = _DEFAULTS["enable_prefix_caching"],
        kv_cache_memory: Union[str, float, int] = _DEFAULTS["kv_cache_memory"],
        tensor_parallel_size: int = 1,
        *,
        kv_cache_dtype: str = "auto",
        max_num_batched_tokens: int = _DEFAULTS["max_num_batched_tokens"],
        block_size: int = _DEFAULTS["block_size"],
        **kwargs: Any,
    ) -> None:
        if kwargs:
            name = next(iter(kwargs))
            hint = _HINTS.get(name)
            raise TypeError(
                f"LLM() got an unexpected keyword argument {name!r}" + (f": {hint}" if hint else "")
            )
        _check_tensor_parallel(tensor_parallel_size)
        self._engine = _corvid.Engine(
            model=os.fspath(model),
            tokenizer=None if tokenizer is None else os.fspath(tokenizer),
            dtype=str(dtype),
            quantization=quantization,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            block_size=block_size,
            kv_cache_memory=str(kv_cache_memory),
            kv_cache_dtype=kv_cache_dtype,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
        )
        note = self._engine.dtype_note
        if note:
            warnings.warn(note, stacklevel=2)

    @property
    def config(self) -> Dict[str, Any]:
        """What the engine runs with: model path, context length, dtypes, KV pool
        (blocks, block size, bytes), batch limits, tensor_parallel_size."""
        return self._engine.config

    def stats(self) -> Dict[str, int]:
        """The engine's state after everything asked of it so far has been applied:
        `running`, `waiting`, `unfinished_requests`, `kv_blocks_used`, `kv_blocks_free`,
        `kv_blocks_total` (all blocks are free once no request is in flight)."""
        return self._engine.stats()

    def abort(self) -> None:
        """Stops every `generate`/`chat` call running now, from any thread: each frees its
        KV blocks and raises `GenerationAborted` holding the partial outputs."""
        self._engine.abort()

    def generate(
        self,
        prompts: Union[PromptType, Sequence[PromptType]],
        sampling_params: Union[None, SamplingParams, Sequence[SamplingParams]] = None,
        use_tqdm: Union[bool, Callable[..., Any]] = True,
    ) -> List[RequestOutput]:
        """Generates for every prompt, all batched together; results in input order.

        Args:
            prompts: A string, a list of token ids, a dict with "prompt" or
                "prompt_token_ids", or a list of these.
            sampling_params: One for all prompts, one per prompt, or None for the
                defaults.
            use_tqdm: Show a progress bar (tqdm if installed, else a line on stderr), or
                a tqdm-like class to draw it with.

        The GIL is released while the engine works. Ctrl-C aborts the requests, frees
        their KV blocks and raises `KeyboardInterrupt`; `LLM.abort()` from another thread
        raises `GenerationAborted`. Either way the `LLM` stays usable.

        Raises:
            ValueError: a bad prompt (empty, too long, out of the vocabulary) or sampling
                value, named; nothing is generated.
            TypeError: a prompt or sampling_params of the wrong type.
        """
        items = _prompts(prompts)
        return self._run(items, _params(sampling_params, len(items)), True, use_tqdm)

    def chat(
        self,
        messages: Union[Sequence[Message], Sequence[Sequence[Message]]],
        sampling_params: Union[None, SamplingParams, Sequence[SamplingParams]] = None,
        use_tqdm: Union[bool, Callable[..., Any]] = True,
        add_generation_prompt: bool = True,
    ) -> List[RequestOutput]:
        """Generates replies to one conversation or a list of them, rendered with the
        model's chat template (and tokenized without adding special tokens, which the
        template writes). Messages are dicts with "role" and "content" (a string, or
        OpenAI-style parts of type "text")."""
        conversations = _conversations(messages)
        texts = self._engine.render_chat(conversations, add_generation_prompt)
        items = [(t, None) for t in texts]
        return self._run(items, _params(sampling_params, len(items)), False, use_tqdm)

    def _run(
        self,
        items: List[Tuple[Optional[str], Optional[List[int]]]],
        params: List[SamplingParams],
        add_special_tokens: bool,
        use_tqdm: Union[bool, Callable[..., Any]],
    ) -> List[RequestOutput]:
        if not items:
            return []
        progress = _progress.start(use_tqdm, len(items))
        try:
            raw, aborted = self._engine.generate(items, params, add_special_tokens, progress)
        finally:
            if progress is not None:
                progress.close()
        outputs = [from_engine(r) for r in raw]
        if aborted:
            raise GenerationAborted(outputs)
        return outputs


def _check_tensor_parallel(size: Any) -> None:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"tensor_parallel_size must be an int, got {type(size).__name__}")
    if size < 1:
        raise ValueError(f"tensor_parallel_size must be at least 1, got {size}")


def _is_token_ids(p: Any) -> bool:
    return (
        isinstance(p, (list, tuple))
        and len(p) > 0
        and all(isinstance(t, int) and not isinstance(t, bool) for t in p)
    )


def _prompt(p: Any, where: str) -> Tuple[Optional[str], Optional[List[int]]]:
    if isinstance(p, str):
        return (p, None)
    if isinstance(p, dict):
        if "prompt_token_ids" in p:
            return (p.get("prompt"), list(p["prompt_token_ids"]))
        if isinstance(p.get("prompt"), str):
            return (p["prompt"], None)
        raise ValueError(f"{where}: a prompt dict needs 'prompt' (str) or 'prompt_token_ids'")
    if isinstance(p, (list, tuple)) and (len(p) == 0 or _is_token_ids(p)):
        return (None, list(p))
    raise TypeError(
        f"{where}: expected a string, a list of token ids or a dict, got {type(p).__name__}"
    )


def _prompts(prompts: Any) -> List[Tuple[Optional[str], Optional[List[int]]]]:
    if isinstance(prompts, (str, dict)) or _is_token_ids(prompts):
        return [_prompt(prompts, "prompts")]
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(
            f"prompts: expected a string, token ids, a dict or a list of them, got {type(prompts).__name__}"
        )
    return [_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]


def _params(sp: Any, count: int) -> List[SamplingParams]:
    if sp is None:
        return [SamplingParams()] * count
    if isinstance(sp, SamplingParams):
        return [sp] * count
    if isinstance(sp, (list, tuple)) and all(isinstance(p, SamplingParams) for p in sp):
        return list(sp)  # the engine checks there is one per prompt
    raise TypeError("sampling_params: expected a SamplingParams, a list of them, or None")


def _content(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ValueError(f"{where}: only text content parts are supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise TypeError(f"{where}: content must be a string or a list of text parts")


def _conversations(messages: Any) -> List[List[Tuple[str, str]]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages: expected a non-empty list of messages or of conversations")
    batch = messages if isinstance(messages[0], (list, tuple)) else [messages]
    out = []
    for i, conv in enumerate(batch):
        conversation = []
        for j, m in enumerate(conv):
            where = f"messages[{i}][{j}]" if batch is messages else f"messages[{j}]"
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ValueError(f"{where}: a message is a dict with 'role' and 'content'")
            conversation.append((m["role"], _content(m.get("content"), where)))
        if not conversation:
            raise ValueError(f"messages[{i}]: a conversation needs at least one message")
        out.append(conversation)
    return out
