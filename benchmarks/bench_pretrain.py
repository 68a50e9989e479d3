"""`albert-zh pretrain`'s training step against transformers' AlbertForPreTraining + AdamW.

    python benchmarks/bench_pretrain.py [--threads 2] [--rounds 3] [--repeats 3]

tiny (Google layout), batch 32 x 128, 51 masked positions per sequence (pretrain's default 40% of
128), fp32, CPU, the same weights and batch on both sides. Ours is the step the pretrain command
runs (`pretrain.train_step`: forward, summed losses, backward, gradient clipping, with AdamW),
eager and as `--compile` runs it (model and losses compiled together; the compilation happens in
the untimed warm-up), each in fp32 and with bf16 autocast (--precision bf16); transformers' is
forward, loss, backward, AdamW in fp32. AdamW is ours too, as transformers' side runs it; what the
default from scratch, Muon for the layer's matrices + AdamW, adds is timed apart: the optimizer step
alone on the same gradients (timing it inside whole steps drowned it in the rounds' spread).
Writes the "Pretraining step" section of BENCHMARKS.md.
"""

from __future__ import annotations

import copy

import torch
from bench_model import SEQ, interleaved, pretraining_batch, twin_models
from common import machine, timing_parser, write_section

from albert_zh.pretrain import DYNAMIC_MASKED_LM_PROB, PretrainConfig, Processes, forward_sums, make_optimizer, train_step


def main():
    parser = timing_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config, ours, theirs = twin_models("tiny", pretraining=True)
    ours.train(), theirs.train()
    size = args.batch_size
    masked = round(DYNAMIC_MASKED_LM_PROB * SEQ)
    ids, mask, types, positions, masked_labels, labels, sop = pretraining_batch(config, size, masked)
    micro_batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "masked_positions": positions,
                   "masked_labels": masked_labels, "sentence_order_label": sop}
    processes = Processes(rank=0, world=1, device=torch.device("cpu"))
    defaults = PretrainConfig(data="", out="", optimizer="adamw")  # the optimizer transformers' side runs
    optimizer = make_optimizer(ours, defaults)
    twin = copy.deepcopy(ours)  # the compiled runs train their own copy
    twin_optimizer, compiled_sums = make_optimizer(twin, defaults), torch.compile(forward_sums)
    adamw = torch.optim.AdamW(theirs.parameters(), lr=defaults.lr)

    def step_theirs():
        adamw.zero_grad(set_to_none=True)
        theirs(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
               sentence_order_label=sop).loss.backward()
        adamw.step()

    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    t = interleaved({"ours": lambda: train_step(ours, optimizer, [micro_batch], processes),
                     "compiled": lambda: train_step(twin, twin_optimizer, [micro_batch], processes,
                                                    sums=compiled_sums),
                     "ours bf16": lambda: train_step(ours, optimizer, [micro_batch], processes, bf16),
                     "compiled bf16": lambda: train_step(twin, twin_optimizer, [micro_batch], processes, bf16,
                                                         sums=compiled_sums),
                     "theirs": step_theirs}, args.rounds, args.repeats)
    for p in ours.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizers = {"adamw": optimizer, "muon": make_optimizer(ours, PretrainConfig(data="", out=""))}
    t.update(interleaved({name: o.step for name, o in optimizers.items()}, args.rounds, 10))
    body = (f"`python benchmarks/bench_pretrain.py --threads {args.threads}`: {machine()}. tiny, batch {size} x {SEQ}, "
            f"{masked} masked positions per sequence; medians of {args.rounds} interleaved rounds of "
            f"{args.repeats} steps.\n\n"
            "| step | ms | sequences/s |\n|---|---:|---:|\n"
            f"| ours: `pretrain.train_step` (AdamW, clipping) | {t['ours'] * 1e3:.0f} | {size / t['ours']:.1f} |\n"
            f"| ours with `--compile` | {t['compiled'] * 1e3:.0f} | {size / t['compiled']:.1f} |\n"
            f"| ours, bf16 autocast | {t['ours bf16'] * 1e3:.0f} | {size / t['ours bf16']:.1f} |\n"
            f"| ours, bf16 autocast, `--compile` | {t['compiled bf16'] * 1e3:.0f} | {size / t['compiled bf16']:.1f} |\n"
            f"| transformers AlbertForPreTraining + AdamW (fp32) | {t['theirs'] * 1e3:.0f} | {size / t['theirs']:.1f} |\n\n"
            f"Speed-up in fp32: **{t['theirs'] / t['ours']:.2f}x** eager, {t['theirs'] / t['compiled']:.2f}x "
            f"compiled. `--compile` over eager: {t['ours'] / t['compiled']:.2f}x in fp32, "
            f"{t['ours bf16'] / t['compiled bf16']:.2f}x with bf16 autocast. The optimizer step alone: "
            f"{t['adamw'] * 1e3:.1f} ms with AdamW (fused), {t['muon'] * 1e3:.1f} ms with Muon + AdamW, the default "
            "from scratch (five Newton-Schulz iterations on each of the layer's six matrices). Our MLM head scores "
            "the vocabulary only at the masked positions, as the original TF code does; transformers' scores all 128.")
    print(body)
    if not args.no_write:
        write_section("Pretraining step", body)


if __name__ == "__main__":
    main()
