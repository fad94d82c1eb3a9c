"""Stopping a running generate: `LLM.abort()` from another thread, and Ctrl-C (SIGINT).
Either way the requests stop, their KV blocks are freed, and the LLM stays usable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import MODEL, assert_usable
from corvid import LLM, GenerationAborted, SamplingParams

LONG = SamplingParams(temperature=0, max_tokens=4000, ignore_eos=True)


def wait_until_running(llm: LLM) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = llm.stats()
        if s["running"] > 0 and s["kv_blocks_used"] > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the generate never started")


def test_abort_from_another_thread_frees_kv_blocks(llm: LLM, probe_text: str) -> None:
    prompts = [f"Count from one to a thousand, attempt {i}:" for i in range(4)]
    used_while_running = []

    def abort_soon() -> None:
        wait_until_running(llm)
        time.sleep(0.3)
        used_while_running.append(llm.stats()["kv_blocks_used"])
        llm.abort()

    t = threading.Thread(target=abort_soon)
    t.start()
    with pytest.raises(GenerationAborted) as aborted:
        llm.generate(prompts, LONG, use_tqdm=False)
    t.join()
    outs = aborted.value.outputs
    assert [o.prompt for o in outs] == prompts
    for o in outs:
        assert o.outputs[0].finish_reason == "abort" and o.finished
        assert 0 < len(o.outputs[0].token_ids) < LONG.max_tokens
        assert o.outputs[0].text
    assert used_while_running[0] > 0
    s = llm.stats()
    assert s["kv_blocks_free"] == s["kv_blocks_total"] and s["unfinished_requests"] == 0, s
    assert_usable(llm, probe_text)


CTRL_C = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from corvid import LLM, SamplingParams
    llm = LLM(model=sys.argv[1], kv_cache_memory="256MiB")
    def interrupt():
        while llm.stats()["running"] == 0:
            time.sleep(0.02)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    try:
        llm.generate(["Tell me a long story."] * 3, SamplingParams(temperature=0, max_tokens=4000, ignore_eos=True))
        print("not interrupted")
    except KeyboardInterrupt:
        s = llm.stats()
        print("interrupted after", round(time.monotonic() - started, 1), "s; free", s["kv_blocks_free"], "of", s["kv_blocks_total"], "unfinished", s["unfinished_requests"])
        assert s["kv_blocks_free"] == s["kv_blocks_total"] and s["unfinished_requests"] == 0, s
    out = llm.generate("The capital of France is", SamplingParams(temperature=0, max_tokens=8), use_tqdm=False)
    print("then generated", repr(out[0].outputs[0].text))
    """
)


def test_ctrl_c_interrupts_generate_cleanly() -> None:
    run = subprocess.run([sys.executable, "-c", CTRL_C, MODEL], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "interrupted after" in run.stdout, run.stdout
    assert "then generated ' Paris" in run.stdout, run.stdout
