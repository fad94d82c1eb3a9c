"""What `LLM.generate` and `LLM.chat` return, with vLLM's class and field names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Logprob:
    """A token's log-probability at one position.

    Attributes:
        logprob: Its log-probability under the model.
        rank: 1 for the most likely token, 2 for the next...; `None` for a sampled token
            outside the requested top alternatives.
        decoded_token: Its text.
    """

    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


@dataclass
class CompletionOutput:
    """One sample of a request.

    Attributes:
        index: Which of the request's `n` samples.
        text: The generated text (stop strings excluded).
        token_ids: The generated token ids.
        cumulative_logprob: Sum of the sampled tokens' logprobs, when logprobs were asked.
        logprobs: Per position, token id to `Logprob`: the top alternatives and the
            sampled token, when `SamplingParams.logprobs` was set.
        finish_reason: "stop" (EOS, a stop string or token), "length" (`max_tokens` or
            the context), "abort", or None if unfinished.
    """

    index: int
    text: str
    token_ids: List[int]
    cumulative_logprob: Optional[float]
    logprobs: Optional[List[Dict[int, Logprob]]]
    finish_reason: Optional[str] = None

    def finished(self) -> bool:
        """Whether this sample ended."""
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    """The result for one prompt.

    Attributes:
        request_id: The engine's id of the request.
        prompt: The prompt text (for chat, the rendered template); None for token ids.
        prompt_token_ids: The prompt's token ids as the engine saw them.
        outputs: The samples, by index.
        finished: Whether every sample ended.
        num_cached_tokens: Prompt tokens served from the prefix cache.
    """

    request_id: str
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput] = field(default_factory=list)
    finished: bool = True
    num_cached_tokens: int = 0


def from_engine(raw: tuple) -> RequestOutput:
    """A `RequestOutput` from the tuple `_corvid.Engine.generate` returns per request."""
    request_id, prompt, prompt_token_ids, cached, finished, samples = raw
    outputs = [
        CompletionOutput(
            index=index,
            text=text,
            token_ids=token_ids,
            cumulative_logprob=cumulative,
            logprobs=None
            if logprobs is None
            else [
                {tid: Logprob(lp, rank, tok) for tid, lp, rank, tok in position}
                for position in logprobs
            ],
            finish_reason=finish_reason,
        )
        for index, text, token_ids, finish_reason, cumulative, logprobs in samples
    ]
    return RequestOutput(request_id, prompt, prompt_token_ids, outputs, finished, cached)
