"""The official OpenAI client against `corvid serve --ssl-keyfile/--ssl-certfile` with a
self-signed certificate made at test time: chat (plain and streamed) over HTTPS when the
client trusts the certificate; a certificate error when it does not; plain HTTP to the
TLS port gets no answer.

  python test_tls.py https://127.0.0.1:PORT CERT.pem
Prints PASS/FAIL lines and a final `N passed, M failed`.
"""
import sys
import urllib.request

import httpx
from openai import APIConnectionError, OpenAI

BASE = sys.argv[1].rstrip("/")
CERT = sys.argv[2]
trusted = OpenAI(base_url=f"{BASE}/v1", api_key="none", max_retries=0, timeout=120,
                 http_client=httpx.Client(verify=CERT))
results = []


def check(fn):
    try:
        fn()
        results.append(True)
        print(f"PASS tls_{fn.__name__}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        results.append(False)
        print(f"FAIL tls_{fn.__name__}: {type(e).__name__}: {e}", flush=True)


def model():
    return trusted.models.list().data[0].id


def chat_over_https():
    r = trusted.chat.completions.create(model=model(), messages=[{"role": "user", "content": "Hi"}],
                                        max_tokens=4, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length", r
    assert r.usage.completion_tokens == 4, r.usage


def chat_stream_over_https():
    chunks = list(trusted.chat.completions.create(
        model=model(), messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True,
        extra_body={"ignore_eos": True}))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"], finishes


def untrusted_certificate_is_refused():
    untrusted = OpenAI(base_url=f"{BASE}/v1", api_key="none", max_retries=0, timeout=30)
    try:
        untrusted.models.list()
    except APIConnectionError as e:
        assert "CERTIFICATE_VERIFY_FAILED" in repr(e.__cause__) or "certificate" in repr(e.__cause__).lower(), repr(e.__cause__)
        return
    raise AssertionError("a client that does not trust the certificate got an answer")


def plain_http_gets_no_answer():
    url = BASE.replace("https://", "http://") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            raise AssertionError(f"plain HTTP answered {r.status}")
    except AssertionError:
        raise
    except Exception:  # noqa: BLE001 - any transport error is the expected outcome
        return


for f in (chat_over_https, chat_stream_over_https, untrusted_certificate_is_refused,
          plain_http_gets_no_answer):
    check(f)
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
