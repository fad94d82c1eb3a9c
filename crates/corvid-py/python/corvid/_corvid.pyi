"""Type stubs of corvid's native module (the Rust engine); `corvid` wraps it."""

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

DEFAULT_MODEL_NAME: str

# (token id, logprob, rank or None, decoded token)
_Logprob = Tuple[int, float, Optional[int], str]
# (index, text, token ids, finish reason, cumulative logprob, logprobs per position)
_Sample = Tuple[int, str, List[int], Optional[str], Optional[float], Optional[List[List[_Logprob]]]]
# (request id, prompt, prompt token ids, cached prompt tokens, finished, samples)
_Request = Tuple[str, Optional[str], List[int], int, bool, List[_Sample]]

def check_sampling_params(params: Any) -> None:
    """Raises ValueError (naming the field) or TypeError if the engine would refuse `params`."""

def engine_defaults() -> Dict[str, Any]:
    """The engine's defaults for LLM's max_num_seqs, max_num_batched_tokens, block_size,
    kv_cache_memory and enable_prefix_caching."""

def default_model_path() -> Path:
    """Where the default model is installed."""

def run_cli(argv: List[str]) -> int:
    """Runs the corvid command line in this process; returns its exit code."""

class Engine:
    """A loaded model and its running engine thread."""

    def __init__(
        self,
        *,
        model: str,
        tokenizer: Optional[str],
        dtype: str,
        quantization: Optional[str],
        max_model_len: Optional[int],
        max_num_seqs: int,
        max_num_batched_tokens: int,
        block_size: int,
        kv_cache_memory: str,
        kv_cache_dtype: str,
        enable_prefix_caching: bool,
        seed: Optional[int],
        tensor_parallel_size: int,
    ) -> None: ...
    @property
    def dtype_note(self) -> Optional[str]:
        """What a 16-bit dtype means on CPU, or None."""
    @property
    def config(self) -> Dict[str, Any]:
        """What the engine runs with."""
    def stats(self) -> Dict[str, int]:
        """The engine's state after every earlier command."""
    def abort(self) -> None:
        """Stops every generate running now."""
    def render_chat(
        self, conversations: List[List[Tuple[str, str]]], add_generation_prompt: bool
    ) -> List[str]:
        """Each conversation rendered with the model's chat template."""
    def generate(
        self,
        prompts: List[Tuple[Optional[str], Optional[List[int]]]],
        params: List[Any],
        add_special_tokens: bool,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Tuple[List[_Request], bool]:
        """The requests' outputs in input order, and whether abort() stopped them."""
