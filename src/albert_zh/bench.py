"""`bench`: latency, throughput and memory of a model directory on this machine, per backend.

Each backend runs in a fresh process, so its peak RSS is its own (model, runtime and buffers).
`--max-batch` answers the original project's question: the largest batch that fits a memory
budget at each sequence length, found by doubling then bisecting, one process per try.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albert_zh.backends import BACKENDS, EXPORTED_FILES
from albert_zh.inference import load_backend


@dataclass(frozen=True)
class BenchConfig:
    model: str
    backends: tuple[str, ...] = ("torch",)
    seq_lens: tuple[int, ...] = (32, 64, 128, 256, 512)
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    threads: int = 2
    seconds: float = 2.0  # measuring time per (batch, length), after warm-up

    def __post_init__(self):
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
        if not Path(self.model).is_dir():
            raise FileNotFoundError(f"model folder not found: {self.model}")
        if min(self.seq_lens) < 2 or min(self.batch_sizes) < 1:
            raise ValueError("sequence lengths must be >= 2 and batch sizes >= 1")


def random_batch(batch: int, length: int, vocab_size: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    ids = np.random.default_rng(seed).integers(5, vocab_size, (batch, length))
    return ids, np.ones_like(ids), np.zeros_like(ids)


def peak_rss_bytes() -> int:
    """This process's peak resident memory. /proc's VmHWM starts afresh at exec; getrusage's
    maxrss does not (a spawned child would report its parent's peak), so it is the fallback."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux and most BSDs: KiB


def time_calls(call, seconds: float, min_calls: int = 5) -> np.ndarray:
    """Seconds per call, after three warm-up calls, for about `seconds` (at least min_calls)."""
    for _ in range(3):
        call()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < end:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return np.array(times)


def _measure(model: str, backend: str, shapes: list[tuple[int, int]], threads: int, seconds: float) -> dict:
    """Runs in a fresh process: latency per shape, then the process's peak RSS."""
    from albert_zh.model import AlbertConfig

    vocab_size = AlbertConfig.from_json(Path(model) / "config.json").vocab_size
    run = load_backend(model, backend, threads)
    rows = []
    for batch, length in shapes:
        arrays = random_batch(batch, length, vocab_size)
        times = time_calls(lambda arrays=arrays: run(*arrays), seconds)
        rows.append({"batch": batch, "seq_len": length, "p50_ms": float(np.median(times) * 1e3),
                     "p95_ms": float(np.percentile(times, 95) * 1e3),
                     "sequences_per_s": batch / float(np.median(times))})
    return {"rows": rows, "peak_rss": peak_rss_bytes()}


def in_fresh_process(function, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def model_file_bytes(model: str, backend: str) -> int:
    name = EXPORTED_FILES.get(backend, "model.safetensors")
    return (Path(model) / name).stat().st_size


def bench(config: BenchConfig) -> list[dict]:
    """One row per backend, batch size and sequence length."""
    shapes = [(b, s) for s in config.seq_lens for b in config.batch_sizes]
    rows = []
    for backend in config.backends:
        result = in_fresh_process(_measure, config.model, backend, shapes, config.threads, config.seconds)
        size = model_file_bytes(config.model, backend)
        rows += [{"backend": backend, **row, "peak_rss_mb": result["peak_rss"] / 2**20, "file_mb": size / 2**20}
                 for row in result["rows"]]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| backend | batch | seq len | p50 ms | p95 ms | sequences/s | peak RSS MB | file MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['backend']} | {r['batch']} | {r['seq_len']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['sequences_per_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['file_mb']:.1f} |" for r in rows]
    return "\n".join(lines)


def _fits(model: str, backend: str, batch: int, length: int, threads: int, budget: int) -> bool:
    result = in_fresh_process(_measure, model, backend, [(batch, length)], threads, 0.0)
    return result["peak_rss"] <= budget


def max_batch_sizes(config: BenchConfig, budget_bytes: int, limit: int = 4096) -> list[dict]:
    """The largest batch (up to `limit`) whose process stays within budget_bytes, per sequence length."""
    rows = []
    backend = config.backends[0]
    for length in config.seq_lens:
        low, high = 0, 1
        while high <= limit and _fits(config.model, backend, high, length, config.threads, budget_bytes):
            low, high = high, high * 2
        high = min(high, limit + 1)
        while high - low > max(1, low // 16):  # to within ~6%: each try is a new process
            middle = (low + high) // 2
            if _fits(config.model, backend, middle, length, config.threads, budget_bytes):
                low = middle
            else:
                high = middle
        rows.append({"seq_len": length, "max_batch": low})
    return rows


def parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)
    except ValueError:
        raise ValueError(f"--memory-budget {text!r}: give a size like 8GB or 512MB") from None
