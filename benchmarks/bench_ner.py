"""Entity tagging against transformers' AlbertForTokenClassification, same weights, one run, CPU.

Two measurements, each side by side in interleaved rounds (medians):
  fine-tuning step: forward, loss, backward, clipping, AdamW, schedule on one batch of 32 CLUENER
    sentences tagged by `albert-zh finetune`'s encoding (random ids of the same shape without
    ../shared), padded to the longest; ours is `finetune.train_step` with `make_optimizer`, theirs
    transformers' model with `torch.optim.AdamW` and the same clipping and linear schedule;
  inference at batch 1 x 128: transformers eager fp32 against our torch, onnx and onnx-int8 backends
    (the files `albert-zh export` writes), tag scores for every token.
tiny_google, random weights (speed does not depend on them). Writes the "Entity tagging" section
of BENCHMARKS.md.

    python benchmarks/bench_ner.py [--threads 2] [--rounds 3] [--repeats 5]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from bench_finetune import training_steps
from bench_model import interleaved, interleaved_rounds
from common import machine, timing_parser, write_section

from albert_zh.bench import random_batch
from albert_zh.finetune import batches, encode_task
from albert_zh.inference import load_backend
from albert_zh.model import AlbertConfig, AlbertForTokenClassification
from albert_zh.ner import tag_set
from albert_zh.tasks import get_task, read_examples
from albert_zh.tokenizer import load_tokenizer

BATCH, SEQ = 32, 128
CLUENER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cluener" / "train.json"
BACKENDS = ("torch", "onnx", "onnx-int8")


def training_batch(tags: tuple[str, ...], vocab_size: int) -> tuple[dict, str]:
    spec = get_task("cluener")
    if CLUENER.is_file():
        examples = read_examples(spec, CLUENER).examples[:BATCH]
        data = encode_task(spec, examples, load_tokenizer(), {t: i for i, t in enumerate(tags)}, SEQ)
        return next(batches(data, BATCH, pad_id=0)), "CLUENER sentences"
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (BATCH, 50), generator=g)
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, len(tags), (BATCH, 50), generator=g)}, "random ids"


def step_speed(config: AlbertConfig, rounds: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = AlbertForTokenClassification(config).train()
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        theirs = transformers.AlbertForTokenClassification.from_pretrained(tmp).train()
    batch, source = training_batch(tuple(config.id2label.values()), config.vocab_size)
    real = batch["attention_mask"].bool()  # in training ours skips the padded positions
    with torch.no_grad():  # same function before timing
        torch.testing.assert_close(ours(**batch).logits[real], theirs(**batch).logits[real], atol=1e-4, rtol=1e-4)
    t = interleaved(training_steps(ours, theirs, batch), rounds, repeats)
    return {**t, "source": source, "shape": tuple(batch["input_ids"].shape)}


def inference_speed(config: AlbertConfig, rounds: int, repeats: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        AlbertForTokenClassification(config).save_pretrained(tmp)
        theirs = transformers.AlbertForTokenClassification.from_pretrained(tmp, attn_implementation="eager").eval()
        runners = {b: load_backend(tmp, b, threads) for b in BACKENDS}  # exports the ONNX files on first use
        arrays = random_batch(1, SEQ, config.vocab_size)
        tensors = [torch.from_numpy(a) for a in arrays]

        def run_theirs():
            with torch.inference_mode():
                return theirs(*tensors).logits.numpy()

        reference = run_theirs()
        diffs = {b: float(np.abs(run(*arrays)["logits"] - reference).max()) for b, run in runners.items()}
        fns = {"transformers": run_theirs, **{b: (lambda run=run: run(*arrays)) for b, run in runners.items()}}
        per_round = interleaved_rounds(fns, rounds, repeats)
        return {"median_s": {name: statistics.median(s) for name, s in per_round.items()}, "diffs": diffs,
                "int8_ratios": [t / q for t, q in zip(per_round["transformers"], per_round["onnx-int8"], strict=True)]}


def main():
    parser = timing_parser(__doc__.splitlines()[0], repeats=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tags = tag_set(get_task("cluener").labels)
    config = AlbertConfig.preset("tiny_google", num_labels=len(tags), id2label=dict(enumerate(tags)),
                                 classifier_dropout_prob=0.0)
    step = step_speed(config, args.rounds, max(3, args.repeats // 4))
    latency = inference_speed(config, args.rounds, args.repeats, args.threads)
    med = latency["median_s"]
    rows = "\n".join(f"| {name} | {s * 1e3:.1f} | {med['transformers'] / s:.2f}x | "
                     f"{latency['diffs'].get(name, 0.0):.1e} |" for name, s in med.items())
    body = (f"`python benchmarks/bench_ner.py --threads {args.threads} --rounds {args.rounds} --repeats "
            f"{args.repeats}`: {machine()}; transformers {transformers.__version__}. tiny_google with a CLUENER tag "
            f"head ({len(tags)} tags), the same random weights on both sides; medians of interleaved rounds.\n\n"
            f"Fine-tuning step on one batch of {step['shape'][0]} {step['source']} ({step['shape'][1]} tokens after "
            "padding to the longest), forward, loss, backward, clipping, AdamW, schedule:\n\n"
            "| side | ms per step |\n|---|---:|\n"
            f"| ours (`albert-zh finetune`'s step) | {step['ours'] * 1e3:.0f} |\n"
            f"| transformers AlbertForTokenClassification + AdamW | {step['theirs'] * 1e3:.0f} |\n\n"
            f"Speed-up: **{step['theirs'] / step['ours']:.2f}x**.\n\n"
            f"Tag scores at batch 1 x {SEQ} (all ids real):\n\n"
            "| runner | median ms | vs transformers eager | max abs diff vs transformers |\n|---|---:|---:|---:|\n"
            f"{rows}\n\nint8 ONNX against transformers eager: **{med['transformers'] / med['onnx-int8']:.2f}x** "
            f"(round by round: {', '.join(f'{r:.2f}x' for r in latency['int8_ratios'])}).")
    print(body)
    if not args.no_write:
        write_section("Entity tagging", body)


if __name__ == "__main__":
    main()
