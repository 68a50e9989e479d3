"""How soon does a pretraining recipe get the masked LM off its no-context plateau? CPU minutes per recipe.

The first --docs documents of --corpus are prepared at --seq tokens (prepare-data's defaults otherwise:
whole-word n-gram masking, 15%), trained on with batch 32 for --steps steps, and scored every
--eval-every steps on those same instances (fixed masks): accuracy where the input was changed ([MASK] or
a random token), against always guessing the most frequent token there. A model that reads no context
stays at 1.0x; the first step at 2x is the figure of merit. Rows, all on the same batches:

  default          `albert-zh pretrain` with no flags (run through `pretrain()` itself)
  adamw            the defaults with `--optimizer adamw` (AdamW for every parameter, not Muon for the layers)
  mlm-vocab all    the defaults with `--mlm-vocab all` (the loss scores the whole vocabulary)
  seed             the TF seed's recipe: LAMB at 1.76e-3, the TF random init
  standard init    the defaults with `--init standard`
  hf-albert LR     transformers' AlbertForMaskedLM in the tiny_google shape, AdamW, same schedule shape
  hf-bert LR       transformers' BertForMaskedLM of the same width (4 layers, H 312), AdamW
The transformers rows run three times as many steps as the default row needed to reach 2x: if they
have not reached it by then, the default gets there in under a third of their steps.

    python benchmarks/plateau_probe.py                       # everything, about 20 minutes on 2 cores
    python benchmarks/plateau_probe.py --rows default seed   # some rows

The table goes to EVALUATION.md ('Plateau probe').
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
from common import transformers_albert_config, write_section

from albert_zh.data import PretrainingDataset
from albert_zh.model import AlbertConfig
from albert_zh.optim import warmup_polynomial_decay
from albert_zh.prepare import PrepareConfig, prepare_data
from albert_zh.pretrain import METRICS, BatchStream, PretrainConfig, Processes, evaluate, pretrain, train_step

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OURS = {"default": {}, "adamw": {"optimizer": "adamw"}, "mlm-vocab all": {"mlm_vocab": "all"},
        "seed": {"optimizer": "lamb", "init": "standard"},
        "standard init": {"init": "standard"}}
REFERENCES = {"hf-albert": (1e-4, 3e-4, 1e-3), "hf-bert": (5e-4,)}  # BERT: the rate of shared/tools/mlm_reference.py


class Curve(NamedTuple):
    steps: list[int]
    ratios: list[float]  # accuracy where changed / most-frequent accuracy there
    seconds: float

    def first_at(self, level: float) -> int | None:
        return next((s for s, r in zip(self.steps, self.ratios) if r >= level), None)


def memorised_set(corpus: Path, docs: int, seq: int, folder: Path) -> Path:
    text = corpus.read_text(encoding="utf-8").split("\n\n")
    (folder / "docs.txt").write_text("\n\n".join(d.strip() for d in text[:docs]) + "\n", encoding="utf-8")
    prepare_data(PrepareConfig(inputs=(str(folder / "docs.txt"),), out=str(folder / "data"), max_seq_length=seq,
                               max_predictions=max(1, round(seq * 0.15)), workers=1))
    return folder / "data"


def ours(data: Path, folder: Path, overrides: dict, steps: int, every: int) -> Curve:
    """`pretrain()` as the CLI calls it, scored on its own training data."""
    run = folder / f"run-{len(list(folder.glob('run-*')))}"
    started = time.perf_counter()
    pretrain(PretrainConfig(data=str(data), out=str(run), eval_data=str(data), max_steps=steps, eval_every=every,
                            save_every=steps, keep_checkpoints=1, **overrides))
    evals = [json.loads(line) for line in (run / METRICS).read_text().splitlines() if '"eval"' in line]
    return Curve([r["step"] for r in evals],
                 [r["mlm_context_accuracy"] / r["mlm_context_most_frequent_accuracy"] for r in evals],
                 time.perf_counter() - started)


class MaskedLMOnly(torch.nn.Module):
    """A transformers masked LM behind the interface `train_step` and `evaluate` use (no SOP head: its
    logits are a constant, so the SOP loss adds nothing to the gradient)."""

    def __init__(self, kind: str):
        super().__init__()
        import transformers

        self.config = AlbertConfig.preset("tiny_google")
        c = self.config
        if kind == "hf-albert":
            hf = transformers.AlbertForMaskedLM(transformers_albert_config(c))
            self.body, self.head = hf.albert, hf.predictions
        else:
            hf = transformers.BertForMaskedLM(transformers.BertConfig(
                vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
                num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size))
            self.body, self.head = hf.bert, hf.cls
        self.hf = hf

    def forward(self, input_ids, attention_mask, token_type_ids, masked_positions):
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        at_masks = hidden.gather(1, masked_positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return _Output(self.head(at_masks), torch.zeros(len(input_ids), 2))


class _Output(NamedTuple):
    mlm_logits: torch.Tensor
    sop_logits: torch.Tensor


def reference(data: Path, kind: str, lr: float, steps: int, every: int, seed: int) -> Curve:
    """The same batches and schedule as `pretrain` (10% warm-up, linear decay), AdamW with decay 0.01."""
    torch.manual_seed(seed)
    model, dataset, procs = MaskedLMOnly(kind), PretrainingDataset(data), Processes(0, 1, torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_polynomial_decay(steps // 10, steps))
    stream = BatchStream(dataset, 32, procs, seed)
    started, curve = time.perf_counter(), Curve([], [], 0.0)
    for step in range(1, steps + 1):
        train_step(model, optimizer, [stream.next()], procs)
        schedule.step()
        if step % every == 0:
            result = evaluate(model, dataset, 64, procs)
            curve.steps.append(step)
            curve.ratios.append(result["mlm_context_accuracy"] / result["mlm_context_most_frequent_accuracy"])
    return curve._replace(seconds=time.perf_counter() - started)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "clue_small_docs.txt")
    p.add_argument("--docs", type=int, default=20, help="documents memorised (default: 20)")
    p.add_argument("--seq", type=int, default=64, help="tokens per instance (default: 64)")
    p.add_argument("--steps", type=int, default=300, help="steps for our rows (default: 300)")
    p.add_argument("--reference-steps", type=int,
                   help="steps for the transformers rows (default: three times the step at which the default row "
                        "first reached 2x, the most the bar allows; else three times --steps)")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--rows", nargs="+", default=[*OURS, *REFERENCES], choices=[*OURS, *REFERENCES])
    p.add_argument("--lrs", type=float, nargs="+", help="learning rates of the transformers rows (default: "
                   + ", ".join(f"{k} {' '.join(f'{lr:g}' for lr in v)}" for k, v in REFERENCES.items()) + ")")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--no-write", action="store_true", help="print only; leave EVALUATION.md alone")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = memorised_set(a.corpus, a.docs, a.seq, Path(tmp))
        for row in a.rows:
            if row in OURS:
                runs = {row: ours(data, Path(tmp), {"seed": a.seed, **OURS[row]}, a.steps, a.eval_every)}
            else:
                hit = results["default"].first_at(2.0) if "default" in results else None
                budget = a.reference_steps or 3 * (hit or a.steps)
                runs = {f"{row} {lr:g}": reference(data, row, lr, budget, a.eval_every, a.seed)
                        for lr in a.lrs or REFERENCES[row]}
            for name, curve in runs.items():
                results[name] = curve
                print(f"{name:16s} 2x at step {curve.first_at(2.0)}, 1.5x at {curve.first_at(1.5)}, "
                      f"last {curve.ratios[-1]:.2f}x ({curve.seconds:.0f} s) curve "
                      + " ".join(f"{s}:{r:.2f}" for s, r in zip(curve.steps, curve.ratios)), flush=True)
    lines = ["| recipe | steps | first step at 1.5x | first step at 2x | at the last step | CPU seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, c in results.items():
        lines.append(f"| {name} | {c.steps[-1]} | {c.first_at(1.5) or 'never'} | {c.first_at(2.0) or 'never'} | "
                     f"{c.ratios[-1]:.2f}x | {c.seconds:.0f} |")
    body = (f"`python benchmarks/plateau_probe.py` (torch {torch.__version__}, {a.threads} threads): the first {a.docs} "
            f"documents of `{a.corpus.name}` at sequence {a.seq}, batch 32, scored on themselves every {a.eval_every} "
            "steps. The ratio is accuracy where the input was changed over the most-frequent token's accuracy "
            "there; 1.0x is a model that reads no context.\n\n" + "\n".join(lines))
    print(body)
    if not a.no_write:
        write_section("Plateau probe", body, ROOT / "EVALUATION.md")


if __name__ == "__main__":
    main()
