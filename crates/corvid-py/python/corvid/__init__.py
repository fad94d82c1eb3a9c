"""corvid: offline LLM inference on CPU with vLLM's Python API.

    from corvid import LLM, SamplingParams
    llm = LLM(model="default")          # or a .gguf file / Hugging Face model folder
    outputs = llm.generate(["The capital of France is"], SamplingParams(max_tokens=32))
    print(outputs[0].outputs[0].text)

The engine is corvid's Rust engine (continuous batching over paged KV blocks), loaded into
this process; `pip install` also gives the `corvid` command (`corvid serve ...`).
"""

from importlib.metadata import PackageNotFoundError, version

from ._llm import LLM, GenerationAborted
from ._outputs import CompletionOutput, Logprob, RequestOutput
from ._sampling import SamplingParams

try:
    __version__ = version("corvid")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "unknown"

__all__ = [
    "LLM",
    "SamplingParams",
    "RequestOutput",
    "CompletionOutput",
    "Logprob",
    "GenerationAborted",
]
