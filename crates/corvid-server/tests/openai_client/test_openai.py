#!/usr/bin/env python3
"""The official `openai` Python client against a running `corvid serve`.

Usage: test_openai.py BASE_URL [API_KEY]   (BASE_URL like http://127.0.0.1:8000)
Prints one PASS/FAIL line per check and `N passed, M failed`; exits 1 on any failure.
"""
import asyncio
import sys
import time
import traceback

import httpx
import openai
from openai import AsyncOpenAI, OpenAI

BASE = sys.argv[1].rstrip("/")
KEY = sys.argv[2] if len(sys.argv) > 2 else "none"
client = OpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=0, timeout=120)
results = []


def check(fn):
    name = fn.__name__
    t0 = time.time()
    try:
        fn()
        results.append(True)
        print(f"PASS {name} ({time.time() - t0:.1f}s)", flush=True)
    except Exception:  # noqa: BLE001 - report every failure and go on
        results.append(False)
        print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    return fn


def model():
    return client.models.list().data[0].id


@check
def models_list():
    models = client.models.list().data
    assert len(models) == 1 and models[0].id, models


@check
def chat_completion():
    r = client.chat.completions.create(
        model=model(),
        messages=[{"role": "system", "content": "You are brief."}, {"role": "user", "content": "What is 2+2?"}],
        max_tokens=16, temperature=0)
    c = r.choices[0]
    assert r.object == "chat.completion", r
    assert c.message.role == "assistant" and isinstance(c.message.content, str), c
    assert c.finish_reason in ("stop", "length"), c
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@check
def chat_logprobs():
    r = client.chat.completions.create(
        model=model(), messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=4,
        logprobs=True, top_logprobs=3, temperature=0)
    lp = r.choices[0].logprobs.content
    assert lp and len(lp[0].top_logprobs) == 3 and lp[0].logprob <= 0, lp


@check
def completion():
    r = client.completions.create(model=model(), prompt="The sky is", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and isinstance(r.choices[0].text, str), r
    assert 1 <= r.usage.completion_tokens <= 8, r.usage


@check
def completion_echo_logprobs_n():
    r = client.completions.create(model=model(), prompt="Once upon a time", max_tokens=4, echo=True,
                                  logprobs=2, n=2, temperature=0.7, seed=3,
                                  extra_body={"ignore_eos": True})
    assert len(r.choices) == 2, r
    for c in r.choices:
        assert c.text.startswith("Once upon a time"), c.text
        assert c.logprobs.token_logprobs[0] is None and c.logprobs.token_logprobs[-1] <= 0
    assert r.usage.completion_tokens == 8, r.usage


@check
def completion_stop():
    r = client.completions.create(model=model(), prompt="1, 2, 3,", max_tokens=30, temperature=0, stop=[","])
    assert "," not in r.choices[0].text, r.choices[0].text


@check
def chat_stream_with_usage():
    stream = client.chat.completions.create(
        model=model(), messages=[{"role": "user", "content": "Count to ten."}], max_tokens=12,
        temperature=0, stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text, chunks
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"], finishes
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12, chunks[-1]


@check
def completion_stream():
    stream = client.completions.create(model=model(), prompt="Hello", max_tokens=6, stream=True,
                                       extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks), chunks
    assert chunks[-1].choices[0].finish_reason == "length", chunks[-1]


@check
def concurrent_32():
    async def run():
        ac = AsyncOpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=0, timeout=300)
        name = model()
        reqs = [ac.chat.completions.create(model=name, messages=[{"role": "user", "content": f"Say the number {i}"}],
                                           max_tokens=16, temperature=0.5, seed=i) for i in range(32)]
        out = await asyncio.gather(*reqs)
        await ac.close()
        return out
    out = asyncio.run(run())
    assert len(out) == 32 and all(r.choices[0].message.content is not None for r in out)
    assert len({r.id for r in out}) == 32


@check
def error_unknown_model():
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError as e:
        assert e.status_code == 404 and e.code == "model_not_found", e.body
    else:
        raise AssertionError("expected 404")


@check
def error_out_of_range():
    try:
        client.completions.create(model=model(), prompt="x", temperature=-1)
    except openai.BadRequestError as e:
        assert e.param == "temperature", e.body
    else:
        raise AssertionError("expected 400")


@check
def error_wrong_type():
    try:
        client.completions.create(model=model(), prompt="x", extra_body={"max_tokens": "many"})
    except openai.BadRequestError as e:
        assert e.param == "max_tokens", e.body
    else:
        raise AssertionError("expected 400")


@check
def error_context_too_long():
    try:
        client.completions.create(model=model(), prompt="word " * 5000, max_tokens=4)
    except openai.BadRequestError as e:
        assert e.code == "context_length_exceeded", e.body
    else:
        raise AssertionError("expected 400")


@check
def error_malformed_json():
    r = httpx.post(f"{BASE}/v1/chat/completions", content=b'{"messages": [', timeout=30,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text


@check
def error_bad_api_key():
    if KEY == "none":
        return
    bad = OpenAI(base_url=f"{BASE}/v1", api_key="wrong-key", max_retries=0)
    try:
        bad.models.list()
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("expected 401")
    assert httpx.get(f"{BASE}/health").status_code == 200
    assert "vllm_request_throughput" in httpx.get(f"{BASE}/metrics").text


@check
def metrics_after_traffic():
    m = httpx.get(f"{BASE}/metrics").text
    for name in ("vllm_request_throughput", "vllm_request_latency_seconds_bucket", "vllm_gpu_utilization",
                 "vllm_kv_cache_usage_ratio", "vllm_running_requests", "vllm_waiting_requests",
                 "vllm:num_requests_running", "vllm:e2e_request_latency_seconds_bucket"):
        assert f"\n{name}{{" in m, name
    line = next(l for l in m.splitlines() if l.startswith("vllm_request_throughput{"))
    assert float(line.rsplit(" ", 1)[1]) >= 30, line


passed, failed = sum(results), len(results) - sum(results)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
