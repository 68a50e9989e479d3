"""Named-entity recognition on real data: CLUENER2020 and MSRA, ours against transformers.

Rows per dataset, each trained the same way (same split, epochs, learning rate, batch, seed, and
the same random initial weights for the two random starts):
  random        `albert_zh.finetune.finetune` from a random-init `tiny_google`;
  transformers  transformers' AlbertForTokenClassification from those same weights, trained by the
                same loop pieces (encoding, batches, AdamW + schedule, step, dev/test scoring);
  pretrained    with --init-from DIR: `finetune` from that pretrained model.
Finished runs are kept in --work and not run again. The table (entity F1 on the held-out test
split) replaces the "Named entities" section of EVALUATION.md.

Data (../shared/data, read-only), shuffled with seed 0:
  cluener:  cluener/train.json cut into test (1000) / dev (--dev-size) / train (the rest, or --train-size);
  msra_ner: msra_ner/train.txt sentences cut the same way into test (2000) / dev (1000) / train.

    python benchmarks/eval_ner.py [--init-from runs/pretrain/model] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, write_section

from albert_zh import finetune as ft
from albert_zh.checkpoint import write_atomic
from albert_zh.model import AlbertConfig, AlbertForTokenClassification
from albert_zh.ner import tag_set
from albert_zh.tasks import get_task, read_examples

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EVALUATION_MD = Path(__file__).resolve().parents[1] / "EVALUATION.md"
TITLE = "Named entities"
SOURCES = {"cluener": ("cluener/train.json", "\n", ".json", 1000),
           "msra_ner": ("msra_ner/train.txt", "\n\n", ".txt", 2000)}


def split_files(work: Path, dataset: str, train_size: int | None, dev_size: int) -> dict[str, Path]:
    source, separator, suffix, test_size = SOURCES[dataset]
    records = [r for r in (SHARED / source).read_text(encoding="utf-8").split(separator) if r.strip()]
    random.Random(0).shuffle(records)
    train = records[test_size + dev_size:]
    parts = {"test": records[:test_size], "dev": records[test_size:test_size + dev_size],
             "train": train[:train_size] if train_size else train}
    files = {}
    for split, rows in parts.items():
        files[split] = work / "data" / f"{dataset}_{split}{suffix}"
        files[split].parent.mkdir(parents=True, exist_ok=True)
        if not files[split].is_file():  # runs in parallel (one per --starts) share the split of their --work
            write_atomic(files[split], lambda tmp, rows=rows: Path(tmp).write_text(
                separator.join(r.strip("\n") for r in rows) + "\n", encoding="utf-8"))
    return files


def random_init(work: Path, dataset: str, seed: int) -> Path:
    """The random start, saved so that ours and transformers begin from the same weights."""
    out = work / "init" / f"{dataset}_seed{seed}"
    if not (out / "config.json").is_file():
        tags = tag_set(get_task(dataset).labels)
        torch.manual_seed(seed)
        AlbertForTokenClassification(AlbertConfig.preset("tiny_google", num_labels=len(tags),
                                                         id2label=dict(enumerate(tags)))).save_pretrained(out)
    return out


class HFTagger(torch.nn.Module):
    """transformers' model with the two things our scoring asks of a tagger: config.id2label and decode."""

    def __init__(self, init: Path):
        super().__init__()
        import transformers

        self.hf = transformers.AlbertForTokenClassification.from_pretrained(init)
        self.config = AlbertConfig.from_json(init / "config.json")

    def forward(self, **batch):
        return self.hf(**batch)

    def decode(self, logits, attention_mask):
        return logits.argmax(-1)


def hf_finetune(init: Path, files: dict, out: Path, dataset: str, args, seed: int) -> dict:
    """The fine-tuning loop of `finetune`, step for step, around transformers' model."""
    started = time.perf_counter()
    spec = get_task(dataset)
    tags = tag_set(spec.labels)
    label2id = {t: i for i, t in enumerate(tags)}
    torch.manual_seed(seed)
    model = HFTagger(init).to("cuda" if torch.cuda.is_available() else "cpu")  # as finetune does
    tokenizer = ft.load_tokenizer(init)
    data = {split: ft.encode_task(spec, read_examples(spec, files[split]).examples, tokenizer, label2id,
                                  args.max_seq_length) for split in files}
    steps = math.ceil(len(data["train"]) / args.batch_size) * args.epochs
    optimizer, scheduler = ft.make_optimizer(model, args.lr, 0.01, 0.1, steps)
    order_rng = random.Random(seed)
    history, best = [], None
    model.train()
    for epoch in range(1, args.epochs + 1):
        order = list(range(len(data["train"])))
        order_rng.shuffle(order)
        losses = [ft.train_step(model, optimizer, scheduler, batch)
                  for batch in ft.batches(data["train"], args.batch_size, tokenizer.pad_id, order)]
        dev = ft.score(spec, model, data["dev"], tokenizer.pad_id)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "dev_f1": dev["f1"]})
        if best is None or dev["f1"] > best["dev"]["f1"]:
            best = {"epoch": epoch, "dev": dev, "test": ft.score(spec, model, data["test"], tokenizer.pad_id)}
    results = {**best, "best_epoch": best.pop("epoch"), "history": history,
               "minutes": (time.perf_counter() - started) / 60}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init-from", help="a pretrained model directory: adds the pretrained row")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--datasets", default="cluener,msra_ner")
    parser.add_argument("--train-size", type=int, help="training sentences per dataset (default: all of the split)")
    parser.add_argument("--dev-size", type=int, default=1000, help="dev sentences per dataset (default: 1000)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--starts", default="random,transformers", help="which rows to run (pretrained: with "
                                                                         "--init-from)")
    parser.add_argument("--work", default="runs/eval_ner")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found: this evaluation needs the shared data")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    starts = args.starts.split(",") + (["pretrained"] if args.init_from else [])
    for seed in [int(s) for s in args.seeds.split(",")]:
        for dataset in args.datasets.split(","):
            files = split_files(work, dataset, args.train_size, args.dev_size)
            for start in starts:
                out = work / dataset / start / f"seed{seed}"
                if (out / "results.json").is_file():
                    continue
                if start == "transformers":
                    hf_finetune(random_init(work, dataset, seed), files, out, dataset, args, seed)
                    continue
                model = args.init_from if start == "pretrained" else str(random_init(work, dataset, seed))
                ft.finetune(ft.FinetuneConfig(task=dataset, model=model, out=str(out), seed=seed, epochs=args.epochs,
                                              lr=args.lr, batch_size=args.batch_size, threads=args.threads,
                                              max_seq_length=args.max_seq_length,
                                              **{k: str(v) for k, v in files.items()}))
    write_table(args, work)


def write_table(args, work: Path):
    results = {tuple(p.parent.parts[-3:]): json.loads(p.read_text()) for p in sorted(work.glob("*/*/seed*/results.json"))}
    sizes = {d: sum(1 for _ in (work / "data" / f"{d}_train{SOURCES[d][2]}").read_text(encoding="utf-8").split(
        SOURCES[d][1]) if _.strip()) for d in args.datasets.split(",")}
    lines = [f"`python benchmarks/eval_ner.py --seeds {args.seeds}"
             f"{' --init-from ' + args.init_from if args.init_from else ''}`: {machine()}.",
             "",
             f"Each run: {args.epochs} epochs, lr {args.lr:g}, batch {args.batch_size}, --max-seq-length "
             f"{args.max_seq_length} (longer texts in overlapping windows), training sentences: "
             + ", ".join(f"{d} {n:,}" for d, n in sizes.items())
             + f"; the best dev epoch ({args.dev_size:,} sentences) is scored on the test split (CLUENER 1,000, "
               "MSRA 2,000 sentences), entity-level micro P/R/F1 with exact span and type.",
             "",
             "| dataset | start | seed | test precision | test recall | test F1 | best epoch | minutes |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (dataset, start, seed), r in results.items():
        t = r["test"]
        lines.append(f"| {dataset} | {start} | {seed.removeprefix('seed')} | {t['precision']:.4f} | "
                     f"{t['recall']:.4f} | {t['f1']:.4f} | {r['best_epoch']} | {r['minutes']:.1f} |")
    if not args.init_from:
        lines += ["", "No pretrained start was given: `--init-from DIR` adds its rows (finished runs are kept)."]
    body = "\n".join(lines)
    write_section(TITLE, body, EVALUATION_MD)
    print(body)


if __name__ == "__main__":
    main()
