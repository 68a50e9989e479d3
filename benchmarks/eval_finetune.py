"""Fine-tuning on real data: ChnSentiCorp and LCQMC, from a random-init tiny and from a pretrained tiny.

Each (dataset, start, epochs, seed) is one `albert_zh.finetune.finetune` run; finished runs are kept
in --work and not run again. The table (accuracy on the held-out split, minutes per run, and the
pretrained-minus-random difference with its spread over seeds) replaces the "Fine-tuning on real
data" section of EVALUATION.md.

Data (../shared/data, read-only):
  chnsenticorp: the first --train-size rows of train.tsv (shuffled with seed 0) -> dev.tsv picks the
                best epoch -> test.tsv is reported;
  lcqmc:        lcqmc/dev.txt shuffled with seed 0 and cut into train (--train-size) / dev (1000) /
                test (all the rest: 3,802 pairs with the default --train-size).

Each start is fine-tuned for every --epochs value (within a run the best dev epoch is kept); for
each (dataset, start) the value with the higher mean dev accuracy over the seeds is the one scored
on test, so a start that overfits in 5 epochs is compared at 2, and one still learning at 2 at 5.

    python benchmarks/eval_finetune.py --pretrained runs/pretrain/model [--seeds 0,1,2] [--epochs 2,5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch
from common import machine, write_section

from albert_zh.checkpoint import config_path
from albert_zh.finetune import FinetuneConfig, finetune
from albert_zh.model import AlbertConfig, AlbertForPreTraining

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EVALUATION_MD = Path(__file__).resolve().parents[1] / "EVALUATION.md"
TITLE = "Fine-tuning on real data"


def split_files(work: Path, train_size: int) -> dict[str, dict[str, Path]]:
    """Write the train/dev/test files of both datasets under WORK/data (fixed seed 0)."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    senti = (SHARED / "chnsenticorp" / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = senti[0], senti[1:]
    rng.shuffle(rows)
    write_split(data / "chnsenticorp_train.tsv", [header, *rows[:train_size]])
    pairs = (SHARED / "lcqmc" / "dev.txt").read_text(encoding="utf-8").splitlines()
    rng.shuffle(pairs)
    for name, part in (("train", pairs[:train_size]), ("dev", pairs[train_size:train_size + 1000]),
                       ("test", pairs[train_size + 1000:])):
        write_split(data / f"lcqmc_{name}.txt", part)
    return {
        "chnsenticorp": {"train": data / "chnsenticorp_train.tsv", "dev": SHARED / "chnsenticorp" / "dev.tsv",
                         "test": SHARED / "chnsenticorp" / "test.tsv"},
        "lcqmc": {"train": data / "lcqmc_train.txt", "dev": data / "lcqmc_dev.txt", "test": data / "lcqmc_test.txt"},
    }


def write_split(path: Path, lines: list[str]):
    """Finished runs in WORK are reused, so their split must not change under them (another
    --train-size, or an earlier version of this script's splits)."""
    text = "\n".join(lines) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise SystemExit(f"{path} holds another split than this run would write; choose another --work")
    path.write_text(text, encoding="utf-8")


def random_start(work: Path, pretrained: str | None) -> str:
    """The baseline: the `tiny` preset, or the pretrained model's own configuration (say, a pre-LN
    tiny) with random weights, saved once under WORK so every seed starts from the same weights."""
    if not pretrained:
        return "tiny"
    config = AlbertConfig.from_json(config_path(pretrained))
    if config == AlbertConfig.preset("tiny"):
        return "tiny"
    out = work / "random_init"
    if not (out / "config.json").is_file():
        torch.manual_seed(0)
        AlbertForPreTraining(config).save_pretrained(out)
    elif AlbertConfig.from_json(out / "config.json") != config:
        raise SystemExit(f"{work} holds random-start runs of another configuration; choose another --work")
    return str(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", help="save_pretrained dir of a pretrained tiny (omit: random init only)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--epochs", default="2,5", help="epoch counts to try; dev picks one per start (default: 2,5)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="runs/eval_finetune")
    parser.add_argument("--datasets", default="chnsenticorp,lcqmc")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found: this evaluation needs the shared data")
    work = Path(args.work)
    files = split_files(work, args.train_size)
    starts = {"random": random_start(work, args.pretrained)}
    if args.pretrained:
        starts["pretrained"] = args.pretrained
    epoch_counts = [int(e) for e in args.epochs.split(",")]
    for seed in [int(s) for s in args.seeds.split(",")]:  # seed-major: every start gets seed 0 first
        for dataset in args.datasets.split(","):
            for start, model in starts.items():
                for epochs in epoch_counts:
                    out = work / dataset / start / f"e{epochs}" / f"seed{seed}"
                    if not (out / "results.json").is_file():
                        finetune(FinetuneConfig(task=dataset, model=model, out=str(out), seed=seed, epochs=epochs,
                                                lr=args.lr, max_seq_length=args.max_seq_length, threads=args.threads,
                                                **{k: str(v) for k, v in files[dataset].items()}))
    # every finished run in WORK, also from earlier invocations with other --seeds: (dataset, start, epochs, seed)
    results = {(p.parts[-5], p.parts[-4], int(p.parts[-3].removeprefix("e")), int(p.parts[-2].removeprefix("seed"))):
               json.loads(p.read_text()) for p in work.glob("*/*/e*/seed*/results.json")}
    write_table(args, starts, {k: r for k, r in results.items() if k[2] in epoch_counts})


def chosen_epochs(results: dict, dataset: str, start: str) -> int | None:
    """The epoch count whose runs have the higher mean dev accuracy, over the seeds every count has."""
    runs = {(e, s): r for (d, st, e, s), r in results.items() if (d, st) == (dataset, start)}
    counts = sorted({e for e, _ in runs})
    seeds = [s for s in sorted({s for _, s in runs}) if all((e, s) in runs for e in counts)]
    if not seeds:
        return None
    return max(counts, key=lambda e: statistics.mean(runs[e, s]["dev"]["accuracy"] for s in seeds))


def write_table(args, starts: dict, results: dict):
    datasets = args.datasets.split(",")
    lines = [(f"`python benchmarks/eval_finetune.py{' --pretrained ' + args.pretrained if args.pretrained else ''}"
              f" --seeds {args.seeds} --epochs {args.epochs} --lr {args.lr:g} --threads {args.threads}` (re-run to "
              f"fill in missing seeds): {machine()}; minutes are wall time of each run on this machine."),
             "",
             (f"Each run: `albert-zh finetune --task TASK --model START --epochs E --lr {args.lr:g} --batch-size 64 "
              f"--max-seq-length {args.max_seq_length}` on {args.train_size} training examples (see the script's "
              "docstring for the splits); the best dev epoch is scored on the test split. Per dataset and start, "
              "the epoch count E with the higher mean dev accuracy (**bold**) is the one compared."),
             "",
             "| dataset | start | epochs | dev accuracy (mean) | test accuracy per seed | mean | minutes per run |",
             "|---|---|---:|---:|---|---:|---:|"]
    chosen = {}
    for dataset in datasets:
        for start, model in starts.items():
            chosen[dataset, start] = chosen_epochs(results, dataset, start)
            for epochs in sorted({e for d, st, e, _ in results if (d, st) == (dataset, start)}):
                rs = [r for (d, st, e, _), r in sorted(results.items()) if (d, st, e) == (dataset, start, epochs)]
                accs = [r["test"]["accuracy"] for r in rs]
                mark = "**" if epochs == chosen[dataset, start] else ""
                lines.append(f"| {dataset} | {start} (`{model}`) | {mark}{epochs}{mark} | "
                             f"{statistics.mean(r['dev']['accuracy'] for r in rs):.4f} | "
                             f"{', '.join(f'{a:.4f}' for a in accs)} | {statistics.mean(accs):.4f} | "
                             f"{statistics.mean(r['minutes'] for r in rs):.1f} |")
    if "pretrained" in starts:
        lines += ["", "Pretrained minus random, test accuracy, paired by seed (each start at its chosen epoch count; "
                  "then both at each count):", ""]
        for dataset in datasets:
            same_count = [(e, e) for e in sorted({e for d, _, e, _ in results if d == dataset})]
            pairs = dict.fromkeys([(chosen[dataset, "pretrained"], chosen[dataset, "random"]), *same_count])
            for ours, theirs in pairs:
                seeds = sorted(s for d, st, e, s in results if (d, st, e) == (dataset, "pretrained", ours)
                               and (dataset, "random", theirs, s) in results)
                if not seeds:
                    continue
                diffs = [results[dataset, "pretrained", ours, s]["test"]["accuracy"]
                         - results[dataset, "random", theirs, s]["test"]["accuracy"] for s in seeds]
                spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
                lines.append(f"- {dataset}, {ours} against {theirs} epochs: {100 * statistics.mean(diffs):+.2f} points "
                             f"(std {100 * spread:.2f} over {len(diffs)} seeds; per seed "
                             f"{', '.join(f'{100 * d:+.1f}' for d in diffs)})")
    else:
        lines += ["", "No pretrained start was given: only the random-init baseline is shown. Re-running with "
                  "`--pretrained DIR` adds the pretrained rows and the paired differences (finished runs are kept)."]
    body = "\n".join(lines)
    write_section(TITLE, body, EVALUATION_MD)
    print(body)


if __name__ == "__main__":
    main()
