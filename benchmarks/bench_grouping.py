"""`pretrain --group-by-length` against random batches, on the shared corpora, one run, CPU.

Every tenth document of the three shared corpora (CLUE web text, reviews, MSRA news, as the
30-minute runs mix them) prepared at sequence 128. Both sides train on the same instances: the
first 64 global batches of one seeded epoch order (one pool of `grouped_by_length`), in random
batches or grouped by length. Each batch is padded to its longest instance, as `pretrain` pads it.
Timed: `pretrain.train_step` with its default AdamW, eager fp32 (where training already skips
padded tokens outside attention) and compiled with bf16 autocast (`--precision bf16 --compile`,
where it does not); the compilations happen in an untimed pass. Writes the "Length-grouped
batches" section of BENCHMARKS.md.

    python benchmarks/bench_grouping.py [--threads 2] [--rounds 3] [--data DIR]
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import machine, timing_parser, write_section

from albert_zh.data import PretrainingDataset
from albert_zh.model import AlbertConfig, AlbertForPreTraining
from albert_zh.prepare import PrepareConfig, prepare_data
from albert_zh.pretrain import (
    DYNAMIC_MASKED_LM_PROB,
    BatchStream,
    PretrainConfig,
    Processes,
    forward_sums,
    make_optimizer,
    train_step,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"
BATCH, POOL = 32, 64
ONE_CPU_PROCESS = Processes(0, 1, torch.device("cpu"))


def sample_corpora(out: Path) -> list[str]:
    """Every tenth document of each shared corpus (text files: blank-line separated; JSON lines)."""
    paths = []
    for name in ("clue_small_docs.txt", "reviews_zh.jsonl", "msra_news_zh.jsonl"):
        source = SHARED / name
        if name.endswith(".txt"):
            documents = source.read_text(encoding="utf-8").split("\n\n")[::10]
            text = "\n\n".join(documents)
        else:
            text = "".join(itertools.islice(source.open(encoding="utf-8"), 0, None, 10))
        (out / name).write_text(text, encoding="utf-8")
        paths.append(str(out / name))
    return paths


def pool_batches(data: Path, grouped: bool) -> list[dict]:
    dataset = PretrainingDataset(data, masked_lm_prob=DYNAMIC_MASKED_LM_PROB)
    stream = BatchStream(dataset, BATCH, ONE_CPU_PROCESS, seed=12345, group_by_length=grouped)
    return [stream.next() for _ in range(POOL)]


def timed_pass(model, optimizer, batches, autocast, sums) -> float:
    start = time.perf_counter()
    for batch in batches:
        train_step(model, optimizer, [batch], ONE_CPU_PROCESS, autocast, sums=sums)
    return (time.perf_counter() - start) / len(batches)


def main():
    parser = timing_parser(__doc__.splitlines()[0], repeats=1)
    parser.add_argument("--data", help="a prepare-data folder at sequence 128 to use instead of the shared sample")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "data"
        if not args.data:
            if not SHARED.is_dir():
                raise SystemExit(f"{SHARED} not found: give --data")
            prepare_data(PrepareConfig(inputs=tuple(sample_corpora(Path(tmp))), out=str(data), max_seq_length=128,
                                       workers=args.threads))
        batches = {"random": pool_batches(data, False), "grouped": pool_batches(data, True)}
        instances = len(PretrainingDataset(data))
    real = {k: sum(int(b["attention_mask"].sum()) for b in v) for k, v in batches.items()}
    width = {k: statistics.mean(b["input_ids"].shape[1] for b in v) for k, v in batches.items()}
    assert real["random"] == real["grouped"]  # the same instances on both sides

    config = AlbertConfig.preset("tiny_google")
    torch.manual_seed(0)
    base = AlbertForPreTraining(config).train()
    modes = {"eager fp32": (contextlib.nullcontext(), False),
             "compiled, bf16 autocast": (torch.autocast("cpu", dtype=torch.bfloat16), True)}
    seconds = {}
    for mode, (autocast, compiled) in modes.items():
        runs = {}
        for kind in batches:
            model = copy.deepcopy(base)
            optimizer = make_optimizer(model, PretrainConfig(data="", out="", optimizer="adamw"))
            sums = torch.compile(forward_sums) if compiled else forward_sums
            timed_pass(model, optimizer, batches[kind][:8], autocast, sums)  # warm-up (and compilation)
            runs[kind] = (model, optimizer, sums)
        samples = {kind: [] for kind in batches}
        for _ in range(args.rounds):
            for kind, (model, optimizer, sums) in runs.items():
                samples[kind].append(timed_pass(model, optimizer, batches[kind], autocast, sums))
        seconds[mode] = {kind: statistics.median(s) for kind, s in samples.items()}
        print(mode, json.dumps({k: round(v * 1e3, 1) for k, v in seconds[mode].items()}), flush=True)

    rows = "\n".join(f"| {mode} | {s['random'] * 1e3:.0f} | {s['grouped'] * 1e3:.0f} | "
                     f"**{s['random'] / s['grouped']:.2f}x** |" for mode, s in seconds.items())
    body = (f"`python benchmarks/bench_grouping.py --threads {args.threads} --rounds {args.rounds}`: {machine()}. "
            f"tiny_google, batch {BATCH}, sequence 128; {instances:,} instances prepared from every tenth document "
            f"of the three shared corpora; both sides train on the same {POOL * BATCH:,} instances (one pool), "
            f"{real['random']:,} real tokens: {real['random'] / (POOL * BATCH * 128):.0%} of 128-token rows. "
            f"Random batches are {width['random']:.1f} tokens wide on average (padded to their longest), "
            f"grouped ones {width['grouped']:.1f}. Milliseconds per step, medians of {args.rounds} interleaved "
            f"passes over the {POOL} batches:\n\n"
            "| step | random batches | grouped by length | speed-up |\n|---|---:|---:|---:|\n" + rows + "\n\n"
            "Eager training already skips padded tokens everywhere but in attention (`Unpadded` in model.py); "
            "the compiled step computes every position of the batch, so narrower batches are where its "
            "time goes down.")
    if not args.no_write:
        write_section("Length-grouped batches", body)
    print(body)


if __name__ == "__main__":
    main()
