"""Fine-tuning throughput against HuggingFace transformers, same weights, same batches, one run, CPU.

One training step = forward + cross-entropy + backward + gradient clipping + AdamW step + scheduler
step. Ours: `albert_zh.finetune.train_step` with `make_optimizer` (the loop `albert-zh finetune`
runs) on `AlbertForSequenceClassification`; theirs: `transformers.AlbertForSequenceClassification`
with `torch.optim.AdamW` and the same clipping and linear schedule. tiny (Google layout, so one
state dict serves both), batch 64 x seq 128: LCQMC pairs from ../shared (random ids if absent),
padded to 128, and the same pairs padded to the longest, as `finetune` batches them. Medians over
interleaved rounds; writes the "Fine-tuning" section of BENCHMARKS.md.

    python benchmarks/bench_finetune.py [--threads 2] [--rounds 3] [--repeats 5]
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from bench_model import interleaved
from common import machine, timing_parser, transformers_albert_config, write_section

from albert_zh.finetune import make_optimizer, train_step
from albert_zh.model import AlbertConfig, AlbertForSequenceClassification
from albert_zh.tokenizer import load_tokenizer

SEQ, BATCH = 128, 64
LCQMC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lcqmc" / "dev.txt"


def lcqmc_batch(config: AlbertConfig) -> tuple[dict, str]:
    """64 real sentence pairs padded to 128 tokens, or random ids where the shared data is absent."""
    if LCQMC.is_file():
        rows = [line.split("\t") for line in LCQMC.read_text(encoding="utf-8").splitlines()[:BATCH]]
        tokenizer = load_tokenizer()
        encoded = [tokenizer.encode_pair(*tokenizer.encode_plain([a, b]), SEQ) for a, b, _ in rows]
        batch = {k: torch.tensor([e[k] + [0] * (SEQ - len(e[k])) for e in encoded])
                 for k in ("input_ids", "token_type_ids", "attention_mask")}
        batch["labels"] = torch.tensor([int(label) for _, _, label in rows])
        return batch, "LCQMC pairs"
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.vocab_size, (BATCH, SEQ), generator=g)
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (BATCH,), generator=g)}, "random ids"


def training_steps(ours: torch.nn.Module, theirs: torch.nn.Module, batch: dict) -> dict:
    """One step each on `batch`: ours as `albert-zh finetune` runs it, theirs with torch's AdamW and
    transformers' linear schedule, the same clipping and learning rate."""
    total = 10_000  # a long schedule: the rate stays near its peak for the timed steps
    opt_ours, sched_ours = make_optimizer(ours, 1e-4, 0.01, 0.1, total)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4, weight_decay=0.01)
    sched_theirs = transformers.get_linear_schedule_with_warmup(opt_theirs, int(0.1 * total), total)

    def step_theirs():
        theirs(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        opt_theirs.step()
        sched_theirs.step()
        opt_theirs.zero_grad(set_to_none=True)

    return {"ours": lambda: train_step(ours, opt_ours, sched_ours, batch), "theirs": step_theirs}


def main():
    parser = timing_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = AlbertConfig.preset("tiny", embedding_layout="google", classifier_dropout_prob=0.0)
    torch.manual_seed(0)
    theirs = transformers.AlbertForSequenceClassification(transformers_albert_config(config)).train()
    ours = AlbertForSequenceClassification(config).train()
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in ours.state_dict()}, strict=True)
    batch, source = lcqmc_batch(config)
    with torch.no_grad():  # same function before timing
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-4, rtol=1e-4)

    longest = int(batch["attention_mask"].sum(1).max())
    trimmed = {k: v[:, :longest] if v.dim() == 2 else v for k, v in batch.items()}
    rows = []
    for what, b in ((f"padded to {SEQ}", batch), (f"padded to the longest ({longest})", trimmed)):
        t = interleaved(training_steps(ours, theirs, b), args.rounds, args.repeats)
        rows.append(f"| {what} | {t['ours'] * 1e3:.0f} | {t['theirs'] * 1e3:.0f} | {BATCH / t['ours']:.1f} | "
                    f"{BATCH / t['theirs']:.1f} | **{t['theirs'] / t['ours']:.2f}x** |")
    real = batch["attention_mask"].float().mean()
    body = (f"`python benchmarks/bench_finetune.py --threads {args.threads}`: {machine()}; transformers "
            f"{transformers.__version__}. One fine-tuning step (forward, loss, backward, clipping, AdamW, schedule) "
            f"of tiny on one batch of {BATCH} {source}, the same batch and the same starting weights on both sides; "
            f"ours is `albert-zh finetune`'s step, theirs transformers' AlbertForSequenceClassification + AdamW; "
            f"medians of {args.rounds} interleaved rounds of {args.repeats} steps.\n\n"
            "| batch | ours ms | transformers ms | ours pairs/s | transformers pairs/s | speed-up |\n"
            "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
            f"Where it comes from: in training our encoder computes the real tokens only ({real:.0%} of the "
            f"{BATCH} x {SEQ} positions here; `Unpadded` in model.py), where transformers computes every position; "
            "`finetune` pads each batch to its longest pair, so the second row is the gain of a real run. Beyond "
            "that, transformers computes the tanh GELU from separate mul/pow/tanh/add kernels where ours calls "
            "the fused `gelu(approximate='tanh')`, and ours steps a fused AdamW.")
    print(body)
    if not args.no_write:
        write_section("Fine-tuning", body)


if __name__ == "__main__":
    main()
