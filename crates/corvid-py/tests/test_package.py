"""What `pip install` of the wheel gives besides the API: the `corvid` console script
(the whole product: generate, serve, bench, cpu) and typed, documented modules."""

from __future__ import annotations

import ast
import json
import signal
import socket
import subprocess
import time
import urllib.request
from importlib import resources

import corvid
from conftest import MODEL, console_script
from corvid import _corvid


def test_console_script_runs_the_cli() -> None:
    version = subprocess.run([console_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"corvid {corvid.__version__}"
    cpu = subprocess.run([console_script(), "cpu"], capture_output=True, text=True, timeout=60)
    assert cpu.returncode == 0 and "tier" in cpu.stdout.lower()
    bad = subprocess.run([console_script(), "generate", "--no-such-flag"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--no-such-flag" in bad.stderr


def test_console_script_serves_the_openai_api() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [console_script(), "serve", "--model", MODEL, "--host", "127.0.0.1", "--port", str(port), "--kv-cache-memory", "128MiB"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        req = urllib.request.Request(
            f"{base}/v1/completions",
            data=json.dumps({"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}).encode(),
            headers={"content-type": "application/json"},
        )
        body = json.load(urllib.request.urlopen(req, timeout=60))
        assert body["choices"][0]["text"].startswith(" Paris")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_type_stubs_match_the_native_module() -> None:
    stub = resources.files("corvid").joinpath("_corvid.pyi").read_text()
    assert resources.files("corvid").joinpath("py.typed").is_file()
    tree = ast.parse(stub)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    public = {n for n in dir(_corvid) if not n.startswith("_")}
    assert names == public
    (engine,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Engine"]
    methods = {f.name for f in engine.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")}
    assert methods == {n for n in dir(_corvid.Engine) if not n.startswith("_")}


def test_public_api_is_documented() -> None:
    for name in corvid.__all__:
        obj = getattr(corvid, name)
        assert obj.__doc__ and len(obj.__doc__) > 40, name
    for method in ("generate", "chat", "abort", "stats"):
        assert getattr(corvid.LLM, method).__doc__, method
