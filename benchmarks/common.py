"""Shared by the benchmark scripts: timing, machine description, BENCHMARKS.md sections."""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def timing_parser(description: str, repeats: int = 5) -> argparse.ArgumentParser:
    """The flags every side-by-side timing script takes: --threads, --rounds, --repeats, --no-write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed calls per round (default: {repeats})")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    return parser


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}")


def write_section(title: str, body: str, path: Path = BENCHMARKS_MD):
    """Replace (or append) the `## title` section of BENCHMARKS.md (or `path`), leaving the others alone."""
    text = path.read_text() if path.exists() else f"# {path.stem.title()}\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def transformers_albert_config(config):
    """transformers' AlbertConfig for one of our (Google-layout, post-LN, fully shared) configs."""
    import transformers

    ours_only = ("sharing", "embedding_layout", "ln_type")
    return transformers.AlbertConfig(**{k: v for k, v in config.to_dict().items() if k not in ours_only})
