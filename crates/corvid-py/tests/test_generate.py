"""Generation through the Python API against the real default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PROBE, cli_binaries, cli_generate, greedy
from corvid import LLM, SamplingParams

PROMPTS = [
    PROBE,
    "你好,请介绍一下你自己",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
]


@pytest.mark.parametrize("binary", cli_binaries(), ids=["console-script", "native"][: len(cli_binaries())])
def test_greedy_output_is_identical_to_corvid_generate(llm: LLM, binary: str, tmp_path: Path) -> None:
    ours = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=24), use_tqdm=False)
    cli = cli_generate(binary, PROMPTS, ["--max-tokens", "24"], tmp_path)
    assert [c["prompt"] for c in cli] == PROMPTS
    for o, c in zip(ours, cli):
        assert o.outputs[0].token_ids == c["token_ids"], o.prompt
        assert o.outputs[0].text == c["text"], o.prompt
        assert o.outputs[0].finish_reason == c["finish_reason"]


def test_chat_applies_the_template_like_corvid_generate_chat(llm: LLM, tmp_path: Path) -> None:
    question = "What is the capital of France?"
    out = llm.chat([{"role": "user", "content": question}], SamplingParams(temperature=0, max_tokens=24), use_tqdm=False)
    assert len(out) == 1
    assert "<|im_start|>user" in out[0].prompt and question in out[0].prompt
    assert out[0].prompt.rstrip().endswith("<|im_start|>assistant")
    assert out[0].outputs[0].text.strip()
    cli = cli_generate(cli_binaries()[0], [question], ["--chat", "--max-tokens", "24"], tmp_path)
    assert out[0].outputs[0].token_ids == cli[0]["token_ids"]
    # A batch of conversations, with OpenAI-style text parts.
    two = llm.chat(
        [
            [{"role": "user", "content": question}],
            [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": [{"type": "text", "text": "Hi!"}]}],
        ],
        SamplingParams(temperature=0, max_tokens=8),
        use_tqdm=False,
    )
    assert two[0].outputs[0].token_ids == out[0].outputs[0].token_ids[:8]
    assert "Answer briefly." in two[1].prompt and two[1].outputs[0].token_ids


def test_seeded_sampling_is_reproducible(llm: LLM) -> None:
    def sample(seed: int) -> str:
        sp = SamplingParams(temperature=0.9, top_p=0.95, seed=seed, max_tokens=24)
        return llm.generate(PROMPTS[3], sp, use_tqdm=False)[0].outputs[0].text

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_llm_seed_makes_unseeded_sampling_reproducible_across_runs(default_model: str) -> None:
    def run() -> str:
        llm = LLM(model=default_model, seed=0, kv_cache_memory="64MiB")
        out = llm.generate(PROMPTS[3], SamplingParams(temperature=1.0, max_tokens=24), use_tqdm=False)
        return out[0].outputs[0].text

    assert run() == run()


def test_n_samples(llm: LLM) -> None:
    out = llm.generate(PROMPTS[3], SamplingParams(n=3, temperature=1.0, seed=1, max_tokens=16), use_tqdm=False)
    samples = out[0].outputs
    assert [s.index for s in samples] == [0, 1, 2]
    assert all(s.token_ids and s.finish_reason in ("stop", "length") for s in samples)
    assert len({s.text for s in samples}) > 1


def test_stop_strings_and_stop_token_ids(llm: LLM) -> None:
    ref = llm.generate(PROMPTS[3], SamplingParams(temperature=0, max_tokens=32), use_tqdm=False)[0].outputs[0]
    # A stop string that first occurs in the middle of the reference text.
    k = next(i for i in range(len(ref.text) // 3, len(ref.text) - 3) if ref.text.find(ref.text[i : i + 3]) == i)
    stop = ref.text[k : k + 3]
    out = llm.generate(PROMPTS[3], SamplingParams(temperature=0, max_tokens=32, stop=[stop, "never-seen-xyz"]), use_tqdm=False)
    assert out[0].outputs[0].text == ref.text[:k]
    assert out[0].outputs[0].finish_reason == "stop"
    one = llm.generate(PROMPTS[3], SamplingParams(temperature=0, max_tokens=32, stop=stop), use_tqdm=False)
    assert one[0].outputs[0].text == ref.text[:k]
    tid = ref.token_ids[5]
    first = ref.token_ids.index(tid)
    by_id = llm.generate(PROMPTS[3], SamplingParams(temperature=0, max_tokens=32, stop_token_ids=[tid]), use_tqdm=False)
    assert by_id[0].outputs[0].token_ids == ref.token_ids[: first + 1]
    assert by_id[0].outputs[0].finish_reason == "stop"


def test_logprobs(llm: LLM) -> None:
    out = llm.generate(PROBE, SamplingParams(temperature=0, max_tokens=8, logprobs=3), use_tqdm=False)[0].outputs[0]
    assert out.logprobs is not None and len(out.logprobs) == len(out.token_ids)
    for tid, position in zip(out.token_ids, out.logprobs):
        assert len(position) == 3  # greedy: the sampled token is the top one
        assert position[tid].rank == 1
        ranked = sorted(position.values(), key=lambda lp: lp.rank)
        assert [lp.rank for lp in ranked] == [1, 2, 3]
        assert all(a.logprob >= b.logprob for a, b in zip(ranked, ranked[1:]))
        assert all(lp.logprob <= 0 and lp.decoded_token is not None for lp in ranked)
    assert out.cumulative_logprob == pytest.approx(sum(p[t].logprob for t, p in zip(out.token_ids, out.logprobs)), rel=1e-5)
    sampled_only = llm.generate(PROBE, SamplingParams(temperature=0, max_tokens=4, logprobs=0), use_tqdm=False)[0].outputs[0]
    assert sampled_only.logprobs is not None and all(len(p) == 1 for p in sampled_only.logprobs)
    plain = llm.generate(PROBE, SamplingParams(temperature=0, max_tokens=4), use_tqdm=False)[0].outputs[0]
    assert plain.logprobs is None and plain.cumulative_logprob is None


def test_batch_of_64_prompts_in_order(llm: LLM) -> None:
    prompts = [f"Question {i}: what is {i} plus {i}? Answer:" for i in range(64)]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=8), use_tqdm=False)
    assert [o.prompt for o in outs] == prompts
    assert all(o.finished and 1 <= len(o.outputs[0].token_ids) <= 8 for o in outs)
    # Batched together or alone, greedy output is the same.
    for i in (0, 31, 63):
        assert greedy(llm, [prompts[i]], 8) == [outs[i].outputs[0].text]


def test_token_id_prompts(llm: LLM) -> None:
    ref = llm.generate(PROBE, SamplingParams(temperature=0, max_tokens=8), use_tqdm=False)[0]
    ids = ref.prompt_token_ids
    for prompt in (ids, [ids], {"prompt_token_ids": ids}):
        out = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=8), use_tqdm=False)
        assert out[0].prompt is None and out[0].prompt_token_ids == ids
        assert out[0].outputs[0].token_ids == ref.outputs[0].token_ids


def test_progress_bar(llm: LLM, capfd: pytest.CaptureFixture[str]) -> None:
    # Without tqdm (not installed in the test venv) the built-in bar writes to stderr.
    llm.generate([PROBE] * 3, SamplingParams(temperature=0, max_tokens=4))
    err = capfd.readouterr().err
    assert "Processed prompts" in err and "3/3" in err and "toks/s" in err

    class Bar:
        bars: list = []

        def __init__(self, total: int, **kwargs: object) -> None:
            self.total, self.n, self.closed, self.kwargs = total, 0, False, kwargs
            Bar.bars.append(self)

        def update(self, n: int = 1) -> None:
            self.n += n

        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            self.postfix = s

        def close(self) -> None:
            self.closed = True

    llm.generate([PROBE] * 5, SamplingParams(temperature=0, max_tokens=4), use_tqdm=Bar)
    (bar,) = Bar.bars
    assert (bar.total, bar.n, bar.closed) == (5, 5, True)
