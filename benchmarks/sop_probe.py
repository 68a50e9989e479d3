"""How learnable is sentence order (SOP) on a prepared corpus? Two probes, held-out accuracy each.

1. boundary tokens: a logistic regression on the first and last K tokens of each segment (one
   weight per slot and token id), trained on TRAIN, scored on HELDOUT. It says how much order
   signal sits right at the segment edges, with no encoder at all.
2. --model DIR: that pretrained model trained on the SOP loss alone (AdamW, batch 32, bf16 autocast)
   for --minutes, held-out SOP accuracy before and after. It says whether the encoder can pick the
   signal up once MLM no longer competes for it.

    python benchmarks/sop_probe.py --train data/train --heldout data/heldout [--model runs/pretrain/model]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from albert_zh.data import PretrainingDataset
from albert_zh.model import AlbertForPreTraining
from albert_zh.pretrain import STATS, Processes, evaluate, forward_sums


def boundary_features(dataset: PretrainingDataset, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 4k) feature ids (slot * vocab + token) and the (N,) SOP labels."""
    vocab, rows, labels = dataset.manifest["vocab_size"], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        ids, a, n = item["input_ids"], item["a_length"], len(item["input_ids"])
        # [CLS] A [SEP] B [SEP]: A is ids[1:a-1], B is ids[a:n-1]; a segment shorter than k
        # repeats its edge tokens rather than reading past its end
        a_ids, b_ids = ids[1:a - 1], ids[a:n - 1]
        tokens = [seg[min(j, len(seg) - 1)] for seg in (a_ids, b_ids) for j in range(k)]
        tokens += [seg[max(len(seg) - 1 - j, 0)] for seg in (a_ids, b_ids) for j in range(k)]
        rows.append([slot * vocab + int(t) for slot, t in enumerate(tokens)])
        labels.append(item["sentence_order_label"])
    return torch.tensor(rows), torch.tensor(labels)


def boundary_probe(train: PretrainingDataset, heldout: PretrainingDataset, k: int, epochs: int = 20) -> dict:
    x, y = boundary_features(train, k)
    hx, hy = boundary_features(heldout, k)
    linear = torch.nn.EmbeddingBag(4 * k * train.manifest["vocab_size"], 2, mode="sum")
    torch.nn.init.zeros_(linear.weight)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(512):
            loss = F.cross_entropy(linear(x[batch]), y[batch]) + 1e-5 * linear.weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return {"train": float((linear(x).argmax(-1) == y).float().mean()),
                "heldout": float((linear(hx).argmax(-1) == hy).float().mean())}


def sop_accuracy(model: AlbertForPreTraining, dataset: PretrainingDataset) -> float:
    return evaluate(model, dataset, 256, Processes(rank=0, world=1, device=torch.device("cpu")))["sop_accuracy"]


def sop_only_probe(model_dir: str, train: PretrainingDataset, heldout: PretrainingDataset, minutes: float,
                   lr: float) -> dict:
    torch.manual_seed(0)
    model = AlbertForPreTraining.from_pretrained(model_dir)
    before = sop_accuracy(model, heldout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng, steps, correct, end = np.random.default_rng(0), 0, [], time.monotonic() + minutes * 60
    while time.monotonic() < end:
        batch = train.collate([train[int(i)] for i in rng.integers(0, len(train), 32)])
        sums = dict(zip(STATS, forward_sums(model, batch, torch.autocast("cpu", dtype=torch.bfloat16))))
        (sums["sop_loss_sum"] / sums["sequences"]).backward()  # the SOP loss only
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        correct.append(float(sums["sop_correct"].detach() / sums["sequences"].detach()))
        steps += 1
    return {"steps": steps, "heldout_before": before, "heldout_after": sop_accuracy(model, heldout),
            "train_last_200_steps": float(np.mean(correct[-200:]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="prepare-data folder to fit on")
    parser.add_argument("--heldout", required=True, help="prepare-data folder to score on")
    parser.add_argument("--k", type=int, default=2, help="tokens per segment edge (default: 2)")
    parser.add_argument("--model", help="also train this save_pretrained dir on SOP alone")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, heldout = PretrainingDataset(args.train, seed=1), PretrainingDataset(args.heldout, seed=1)
    band = 1.96 * 0.5 / len(heldout) ** 0.5
    print(f"held-out: {len(heldout)} instances; an order-blind model scores 50% +- {100 * band:.1f} points (95%)")
    result = boundary_probe(train, heldout, args.k)
    print(f"boundary tokens (k={args.k}): train {result['train']:.1%}, held-out {result['heldout']:.1%}")
    if args.model:
        result = sop_only_probe(args.model, train, heldout, args.minutes, args.lr)
        print(f"SOP alone, {args.model}, {result['steps']} steps in {args.minutes:g} min at lr {args.lr:g}: held-out "
              f"{result['heldout_before']:.1%} -> {result['heldout_after']:.1%} "
              f"(train, last 200 steps: {result['train_last_200_steps']:.1%})")


if __name__ == "__main__":
    main()
