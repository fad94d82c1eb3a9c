"""The progress bar of `LLM.generate` / `LLM.chat`: tqdm when it is installed (as vLLM
shows), else a one-line bar on stderr; `use_tqdm` may also be a tqdm-like class."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, Union

_DESC = "Processed prompts"


class SimpleBar:
    """A minimal tqdm stand-in: redraws one line on a terminal (at most ten times a
    second), and prints the final line only elsewhere (logs, pipes)."""

    def __init__(self, total: int, desc: str = _DESC, **_: Any) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.postfix = ""
        self._start = self._drawn = time.monotonic()
        self._tty = sys.stderr.isatty()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw(final=False)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s
        if refresh:
            self._draw(final=False)

    def close(self) -> None:
        self._draw(final=True)

    def _draw(self, final: bool) -> None:
        now = time.monotonic()
        if not final and (not self._tty or now - self._drawn < 0.1):
            return
        self._drawn = now
        width = 30
        filled = width * self.n // max(self.total, 1)
        line = (
            f"{self.desc}: [{'=' * filled}{' ' * (width - filled)}] {self.n}/{self.total} "
            f"{now - self._start:.1f}s" + (f", {self.postfix}" if self.postfix else "")
        )
        end = "\n" if final else ""
        sys.stderr.write(("\r" if self._tty else "") + line + end)
        sys.stderr.flush()


class Progress:
    """The callback the engine calls with (prompts done, tokens generated so far)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.done = 0
        self.start = time.monotonic()

    def __call__(self, done: int, generated: int) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix_str(f"est. speed output: {generated / elapsed:.2f} toks/s", refresh=False)
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self) -> None:
        self.bar.close()


def start(use_tqdm: Union[bool, Callable[..., Any]], total: int) -> Optional[Progress]:
    """A progress reporter for `total` prompts, or None when `use_tqdm` is false."""
    if not use_tqdm:
        return None
    factory: Callable[..., Any]
    if callable(use_tqdm):
        factory = use_tqdm
    else:
        try:
            from tqdm.auto import tqdm as factory
        except ImportError:
            factory = SimpleBar
    return Progress(factory(total=total, desc=_DESC, dynamic_ncols=True))
