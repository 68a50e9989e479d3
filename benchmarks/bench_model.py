"""Model speed against HuggingFace transformers' ALBERT, same weights, same run, CPU.

(a) encoder inference (AlbertModel, eval, inference_mode): tiny and base shapes,
    batch 32 x seq 128 and batch 1 x seq 128;
(b) one pretraining step (forward + backward + AdamW step) of tiny, batch 32 x seq 128 with
    20 masked positions per sequence: our AlbertForPreTraining (logits at the masked positions)
    against transformers.AlbertForPreTraining (labels with -100 elsewhere).

Both models use the Google layout so that one state dict serves both. Timings are medians over
interleaved rounds. Writes the "Model" section of BENCHMARKS.md.

    python benchmarks/bench_model.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import statistics

import torch
import transformers
from common import machine, median_seconds, timing_parser, transformers_albert_config, write_section

from albert_zh.model import AlbertConfig, AlbertForPreTraining, AlbertModel

SEQ = 128
MASKED = 20


def twin_models(preset: str, pretraining: bool):
    """Our model and transformers' with identical random weights."""
    config = AlbertConfig.preset(preset, embedding_layout="google")
    hf_config = transformers_albert_config(config)
    torch.manual_seed(0)
    if pretraining:
        theirs, ours = transformers.AlbertForPreTraining(hf_config), AlbertForPreTraining(config)
    else:
        theirs, ours = transformers.AlbertModel(hf_config), AlbertModel(config)
    wanted = ours.state_dict()
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in wanted}, strict=True)
    return config, ours, theirs


def batch(config: AlbertConfig, size: int):
    g = torch.Generator().manual_seed(size)
    ids = torch.randint(5, config.vocab_size, (size, SEQ), generator=g)
    types = torch.zeros_like(ids)
    types[:, SEQ // 2:] = 1
    return ids, torch.ones_like(ids), types


def pretraining_batch(config: AlbertConfig, size: int, masked: int = MASKED):
    """batch() plus `masked` masked positions per sequence, their labels (as positions and as a
    [B, T] map with -100 elsewhere, transformers' form) and sentence-order labels."""
    ids, mask, types = batch(config, size)
    g = torch.Generator().manual_seed(1)
    positions = torch.stack([torch.randperm(SEQ - 2, generator=g)[:masked] + 1 for _ in range(size)]).sort(1).values
    masked_labels = ids.gather(1, positions)
    labels = torch.full_like(ids, -100).scatter(1, positions, masked_labels)
    sop = torch.randint(0, 2, (size,), generator=g)
    return ids, mask, types, positions, masked_labels, labels, sop


def interleaved_rounds(fns: dict, rounds: int, repeats: int) -> dict[str, list[float]]:
    """Each round times every function in turn (median seconds of `repeats` calls), so a drift in
    the machine's speed reaches all of them alike; the per-round medians, in round order."""
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(median_seconds(fn, repeats))
    return samples


def interleaved(fns: dict, rounds: int, repeats: int) -> dict[str, float]:
    return {name: statistics.median(s) for name, s in interleaved_rounds(fns, rounds, repeats).items()}


def bench_inference(preset: str, size: int, rounds: int, repeats: int) -> dict:
    config, ours, theirs = twin_models(preset, pretraining=False)
    ours.eval(), theirs.eval()
    ids, mask, types = batch(config, size)
    with torch.inference_mode():
        torch.testing.assert_close(ours(ids, mask, types).sequence_output,
                                   theirs(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state,
                                   atol=1e-4, rtol=1e-4)
        t = interleaved({"ours": lambda: ours(ids, mask, types),
                         "theirs": lambda: theirs(input_ids=ids, attention_mask=mask, token_type_ids=types)},
                        rounds, repeats)
    return {"what": f"inference {preset}, batch {size} x {SEQ}", "batch": size, **t}


def bench_pretraining_step(rounds: int, repeats: int, size: int = 32) -> dict:
    config, ours, theirs = twin_models("tiny", pretraining=True)
    ours.train(), theirs.train()
    ids, mask, types, positions, masked_labels, labels, sop = pretraining_batch(config, size)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

    def step_ours():
        opt_ours.zero_grad(set_to_none=True)
        ours(ids, mask, types, labels=masked_labels, sentence_order_label=sop, masked_positions=positions).loss.backward()
        opt_ours.step()

    def step_theirs():
        opt_theirs.zero_grad(set_to_none=True)
        theirs(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
               sentence_order_label=sop).loss.backward()
        opt_theirs.step()

    t = interleaved({"ours": step_ours, "theirs": step_theirs}, rounds, repeats)
    return {"what": f"pretraining step tiny, batch {size} x {SEQ}, {MASKED} masked", "batch": size, **t}


def main():
    parser = timing_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for preset in ("tiny", "base"):
        for size in (1, 32):
            repeats = args.repeats * (8 if size == 1 else 1)
            rows.append(bench_inference(preset, size, args.rounds, repeats))
            print(rows[-1])
    rows.append(bench_pretraining_step(args.rounds, args.repeats))
    print(rows[-1])

    lines = ["| what | ours (ms) | transformers (ms) | ours seq/s | transformers seq/s | speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['ours'] * 1e3:.1f} | {r['theirs'] * 1e3:.1f} | "
                     f"{r['batch'] / r['ours']:.1f} | {r['batch'] / r['theirs']:.1f} | {r['theirs'] / r['ours']:.2f}x |")
    body = (f"`python benchmarks/bench_model.py --threads {args.threads}`: {machine()}; transformers "
            f"{transformers.__version__} (attention: sdpa). Same random weights (Google layout) on both sides; "
            f"medians of {args.rounds} interleaved rounds. Speed-up = transformers time / our time.\n\n"
            + "\n".join(lines)
            + "\n\nThe pretraining step gains most: our MLM head computes vocabulary logits only at the 20 masked "
              "positions (as the original TF code does), transformers' at all 128.")
    print(body)
    if not args.no_write:
        write_section("Model", body)


if __name__ == "__main__":
    main()
