"""Shared fixtures of the Python package's tests. They run against the installed wheel
(tests/run.sh builds it, installs it into a fresh venv, and runs pytest from there) and
the default model; the model is loaded once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from corvid import LLM, SamplingParams, _corvid

MODEL = str(_corvid.default_model_path())

# A prompt whose greedy continuation every test that needs "the LLM still works" checks.
PROBE = "The capital of France is"


@pytest.fixture(scope="session", autouse=True)
def default_model() -> str:
    """The default model's path; without it the tests skip (and fail under CI=true)."""
    if not Path(MODEL).exists():
        why = f"{MODEL} is not installed (scripts/setup.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI=true, so this is an error, not a skip")
        pytest.skip(why)
    return MODEL


@pytest.fixture(scope="session")
def llm() -> LLM:
    return LLM(model=MODEL)


@pytest.fixture(scope="session")
def probe_text(llm: LLM) -> str:
    """The probe's greedy continuation, taken before any test can disturb the engine."""
    return greedy(llm, [PROBE], 12)[0]


def greedy(llm: LLM, prompts: List[str], max_tokens: int) -> List[str]:
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=max_tokens), use_tqdm=False)
    return [o.outputs[0].text for o in outs]


def assert_usable(llm: LLM, probe_text: str) -> None:
    """The engine answers as before and holds no KV block."""
    assert greedy(llm, [PROBE], 12) == [probe_text]
    s = llm.stats()
    assert s["kv_blocks_free"] == s["kv_blocks_total"], s
    assert s["unfinished_requests"] == 0, s


def console_script() -> str:
    """The `corvid` command the wheel installed next to this interpreter."""
    path = Path(sys.executable).parent / "corvid"
    assert path.exists(), f"the wheel installed no console script at {path}"
    return str(path)


def cli_generate(binary: str, prompts: List[str], args: List[str], tmp: Path) -> List[Dict]:
    """`corvid generate --json` over `prompts` (one per line of a file)."""
    f = tmp / "prompts.txt"
    f.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    run = subprocess.run(
        [binary, "generate", "--model", MODEL, "--prompts-file", str(f), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def cli_binaries() -> List[str]:
    """The console script, and the cargo-built binary when CORVID_BIN names one."""
    out = [console_script()]
    native = os.environ.get("CORVID_BIN")
    if native and shutil.which(native):
        out.append(native)
    return out
