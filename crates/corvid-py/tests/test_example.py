"""The user's offline example, with only its import line and model path changed."""

from __future__ import annotations

import contextlib
import io

import pytest

from conftest import MODEL

EXAMPLE = """
from corvid import LLM, SamplingParams
sampling_params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=200)
llm = LLM(model=MODEL, tensor_parallel_size=2, dtype='half')
outputs = llm.generate(["你好,请介绍一下你自己", "写一首关于春天的诗"], sampling_params)
for output in outputs:
    print(f"生成结果: {output.outputs[0].text}")
"""


def run_example(source: str) -> tuple[str, dict]:
    """Runs `source` as a script; returns what it printed and its globals."""
    out = io.StringIO()
    scope = {"MODEL": MODEL}
    with contextlib.redirect_stdout(out):
        exec(source, scope)
    return out.getvalue(), scope


def test_users_example_runs_as_written_with_two_shards_and_prints_both_texts() -> None:
    # tensor_parallel_size=2 splits the default model's heads 2 + 1 KV heads (6 + 3
    # query heads) over two shards; dtype='half' warns that compute stays float32.
    with pytest.warns(UserWarning, match="float32 on CPU"):
        printed, scope = run_example(EXAMPLE)
    lines = [line for line in printed.split("生成结果: ") if line.strip()]
    assert len(lines) == 2, printed
    assert printed.startswith("生成结果: ")
    assert scope["llm"].config["tensor_parallel_size"] == 2


def test_hub_id_gets_a_clear_error() -> None:
    from corvid import LLM

    with pytest.raises(ValueError, match="hub id.*cannot fetch.*local path"):
        LLM(model="meta-llama/Llama-3-8b")
