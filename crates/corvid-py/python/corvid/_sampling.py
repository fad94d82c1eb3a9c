"""`SamplingParams` with vLLM's fields and defaults. The values are checked by the Rust
engine's `SamplingParams::validate` (the one place corvid's limits live) when the object
is made and again when it is used, so a bad value is a `ValueError` naming its field."""

from __future__ import annotations

from typing import List, Optional, Union

from . import _corvid

_FIELDS = (
    "n",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "max_tokens",
    "min_tokens",
    "logprobs",
    "skip_special_tokens",
)


class SamplingParams:
    """How to sample one request's output, as vLLM's `SamplingParams`.

    Args:
        n: Samples to generate for the prompt.
        presence_penalty: Penalizes tokens already in the output (OpenAI's, -2 to 2).
        frequency_penalty: Penalizes tokens by their count in the output (-2 to 2).
        repetition_penalty: Divides the logits of tokens seen in prompt or output
            (Hugging Face's; 1 is off).
        temperature: Randomness; 0 is greedy.
        top_p: Nucleus sampling mass (1 is off).
        top_k: Keep the k most likely tokens; -1 or 0 keeps all.
        min_p: Drop tokens below `min_p` times the top probability (0 is off).
        seed: Seed of this request's random stream; `None` takes the next seed of the
            `LLM`'s stream (so a script with `LLM(seed=0)` samples the same text each run).
        stop: Strings that end generation (not included in the text).
        stop_token_ids: Token ids that end generation.
        ignore_eos: Keep generating past the end-of-sequence token.
        max_tokens: Most tokens to generate; `None` fills the context.
        min_tokens: Fewest tokens before EOS or a stop can end generation.
        logprobs: Return the sampled token's logprob and this many top alternatives
            per position (0: the sampled token only).
        skip_special_tokens: Leave special tokens out of the text.

    Raises:
        ValueError: a value the engine refuses; the message starts with the field.
        TypeError: a value of the wrong type, or an unknown keyword.
    """

    n: int
    presence_penalty: float
    frequency_penalty: float
    repetition_penalty: float
    temperature: float
    top_p: float
    top_k: Optional[int]
    min_p: float
    seed: Optional[int]
    stop: List[str]
    stop_token_ids: List[int]
    ignore_eos: bool
    max_tokens: Optional[int]
    min_tokens: int
    logprobs: Optional[int]
    skip_special_tokens: bool

    def __init__(
        self,
        *,
        n: int = 1,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: Optional[int] = 0,
        min_p: float = 0.0,
        seed: Optional[int] = None,
        stop: Union[None, str, List[str]] = None,
        stop_token_ids: Optional[List[int]] = None,
        ignore_eos: bool = False,
        max_tokens: Optional[int] = 16,
        min_tokens: int = 0,
        logprobs: Optional[int] = None,
        skip_special_tokens: bool = True,
    ) -> None:
        self.n = n
        self.presence_penalty = presence_penalty
        self.frequency_penalty = frequency_penalty
        self.repetition_penalty = repetition_penalty
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.seed = seed
        self.stop = [stop] if isinstance(stop, str) else list(stop or [])
        self.stop_token_ids = list(stop_token_ids or [])
        self.ignore_eos = ignore_eos
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.logprobs = logprobs
        self.skip_special_tokens = skip_special_tokens
        _corvid.check_sampling_params(self)

    def clone(self) -> SamplingParams:
        """A copy (changing it leaves this one as it is)."""
        return SamplingParams(**{f: _copy(getattr(self, f)) for f in _FIELDS})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SamplingParams):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS)
        return f"SamplingParams({fields})"


def _copy(v: object) -> object:
    return list(v) if isinstance(v, list) else v
