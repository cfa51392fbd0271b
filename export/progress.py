"""Progress reporting for export steps (``rich``), so long steps show a spinner and their duration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Show a spinner while the block runs, then a done line with its duration."""
    started = time.perf_counter()
    with console.status(f"{description}…"):
        yield
    console.log(f"{description}: done in {time.perf_counter() - started:.1f} s")
