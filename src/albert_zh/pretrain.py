"""Pretraining: masked LM + sentence order on prepared shards, one process or many (torchrun).

A run folder holds:

    metrics.jsonl               one JSON object per training step, per evaluation, and a summary
    checkpoints/step-0000500.pt model, optimizer, elapsed time, loss scaler, RNG states, data position
    model/                      the final export (config.json + model.safetensors + vocab.txt)
    tensorboard/                the same scalars as TensorBoard events, if `tensorboard` is installed

Data order: epoch e visits the instances in a permutation seeded by (seed, e). Each micro-step
takes the next `world * batch_size` of them (a global micro-batch) and rank r keeps its slice
r*b..(r+1)*b-1, so a run on N processes with batch b sees the same instances per step as one
process with batch N*b. The losses are sums divided by the counts of the whole optimizer step
(all micro-batches on all ranks), so the gradient is the same however the step is split.
The data position (epoch, instances consumed in it) is saved with each checkpoint; together
with dynamic masking seeded by (seed, epoch, index) a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from albert_zh.checkpoint import write_atomic
from albert_zh.data import PretrainingDataset, read_manifest
from albert_zh.model import AlbertAttention, AlbertConfig, AlbertForPreTraining
from albert_zh.optim import Lamb, adamw, muon_adamw, parameter_groups, warmup_polynomial_decay
from albert_zh.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^step-(\d{7})\.pt$")
EXPORT = "model"


class CheckpointSaveError(ValueError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is untouched."""


@dataclass
class PretrainConfig:
    data: str
    out: str
    # preset name or config JSON; default tiny_google (or the --init-from model's): from scratch it
    # learns sooner than brightmart's tiny, whose layout starts the word signal at 2% of the input
    config: str | None = None
    init_from: str | None = None
    batch_size: int = 32  # per process and micro-step
    grad_accum: int = 1
    lr: float | None = None  # default: 7e-4 with AdamW (and AdamW's part of muon), 1.76e-3 (the seed's) with LAMB
    muon_lr: float = 0.005  # --optimizer muon: Muon's rate for the layers' weight matrices
    warmup_steps: int | None = None  # default: 10% of max_steps, as the seed (12.5k of 125k)
    max_steps: int = 10_000
    # "muon": Muon on the layers' weight matrices, AdamW on the rest (further on held-out text than
    # AdamW alone, fine-tuning level with it: EVALUATION.md); "adamw"; "lamb": at batch 32 LAMB's step
    # (lr x ||w|| per tensor) is ~30x smaller than AdamW's. Default: muon from scratch, adamw with
    # --init-from (Muon was measured from scratch only)
    optimizer: str | None = None
    init: str = "local"  # from scratch: "local" (heads read their neighbours, see local_init) or "standard"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: str = "fp32"
    save_every: int = 1000
    keep_checkpoints: int = 3  # 0: none written (the run cannot be resumed)
    eval_every: int = 1000
    eval_data: str | None = None
    seed: int = 12345
    resume: bool = False
    max_minutes: float | None = None
    compile: bool = False  # torch.compile the training forward and backward
    # processes that mask and collate batches ahead; None: 4 per process on a GPU, none on a CPU,
    # where they would take cores from the training step
    loader_workers: int | None = None
    sop_weight: float = 1.0  # the SOP loss's weight in the total (the seed: 1)
    # fraction of the training data's tokens masked; default 40% where the masks are dynamic (made
    # as the batches are read), the data's own where prepare-data fixed them. Held-out data keep theirs.
    masked_lm_prob: float | None = None
    # longest masked span, in words, of dynamic masks; default: the data's (prepare-data's --ngram, 3)
    ngram: int | None = None
    group_by_length: bool = False  # batches of instances of like lengths (less padding; see grouped_by_length)
    # "data": the MLM loss scores only the ids the training data holds (40% of the vocabulary on the
    # shared corpora: more steps in 30 CPU minutes and more learned in them, EVALUATION.md); "all": every
    # id. Default: "data" from scratch, "all" with --init-from (a trained model has a row for every id)
    mlm_vocab: str | None = None

    def __post_init__(self):
        if self.optimizer is None:
            self.optimizer = "adamw" if self.init_from else "muon"
        if self.lr is None:
            self.lr = 1.76e-3 if self.optimizer == "lamb" else 7e-4
        if self.warmup_steps is None:
            self.warmup_steps = self.max_steps // 10
        if self.mlm_vocab is None:
            self.mlm_vocab = "all" if self.init_from else "data"
        problems = []
        for name in ("batch_size", "grad_accum", "max_steps", "save_every", "eval_every"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.keep_checkpoints < 0:
            problems.append("--keep-checkpoints must not be negative")
        if not 0 <= self.warmup_steps <= self.max_steps:
            problems.append(f"--warmup-steps {self.warmup_steps} is outside 0..max-steps")
        if self.lr <= 0 or self.muon_lr <= 0 or self.max_grad_norm <= 0 or self.weight_decay < 0:
            problems.append("--lr, --muon-lr and the clipping norm must be positive, the weight decay not negative")
        if self.optimizer not in ("muon", "adamw", "lamb"):
            problems.append(f"--optimizer {self.optimizer!r}: choose muon, adamw or lamb")
        if self.precision not in ("fp32", "bf16", "fp16"):
            problems.append(f"--precision {self.precision!r}: choose fp32, bf16 or fp16")
        if self.config is not None and self.init_from is not None:
            problems.append("give --config or --init-from, not both (the model's config comes with it)")
        if self.max_minutes is not None and self.max_minutes <= 0:
            problems.append("--max-minutes must be positive")
        if self.init not in ("local", "standard"):
            problems.append(f"--init {self.init!r}: choose local or standard")
        if self.loader_workers is not None and self.loader_workers < 0:
            problems.append("--loader-workers must not be negative")
        if self.sop_weight < 0:
            problems.append("--sop-weight must not be negative")
        if self.mlm_vocab not in ("data", "all"):
            problems.append(f"--mlm-vocab {self.mlm_vocab!r}: choose data or all")
        if self.masked_lm_prob is not None and not 0 < self.masked_lm_prob < 1:
            problems.append("--masked-lm-prob must be between 0 and 1")
        if self.ngram is not None and self.ngram < 1:
            problems.append("--ngram must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))


# ---------------------------------------------------------------- processes


@dataclass
class Processes:
    """This process's place among the torchrun processes (rank 0 of 1 without torchrun)."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def start_processes() -> Processes:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Processes(0, 1, torch.device("cuda" if cuda else "cpu"))
    local_rank = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    return Processes(dist.get_rank(), world, torch.device(f"cuda:{local_rank}" if cuda else "cpu"))


# ---------------------------------------------------------------- data


# Masking rate of dynamically masked training data: at 700 steps of the 12-minute recipe, 25% with
# lr 7e-4 reached 1.37x-1.72x the no-context level on held-out text where 15% reached 1.30x-1.63x,
# and 40% with the MLM head gain at 8 (local_init) 1.36x-1.75x, while reaching 2x on the memorised
# probe 25 steps sooner (EVALUATION.md): more targets a step, for more time (the vocabulary's scores).
DYNAMIC_MASKED_LM_PROB = 0.4


def open_dataset(directory: str, vocab_hash: str, vocab_size: int, masked_lm_prob: float | None = None,
                 ngram: int | None = None) -> PretrainingDataset:
    dataset = PretrainingDataset(directory, masked_lm_prob=masked_lm_prob, ngram=ngram)
    dataset.check_vocabulary(vocab_hash)
    if dataset.manifest["vocab_size"] != vocab_size:
        raise ValueError(f"{directory}: vocabulary of {dataset.manifest['vocab_size']} tokens, "
                         f"the model has vocab_size={vocab_size}")
    if len(dataset) == 0:
        raise ValueError(f"{directory} holds no instances")
    try:
        dataset[0]  # opens (memory-maps) every shard and checks its size against the manifest
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{directory}: a shard is damaged or truncated ({e}); prepare the data again") from e
    return dataset


class BatchStream:
    """This rank's micro-batches, in the seeded order described in the module docstring. With
    `workers` > 0, DataLoader worker processes read, mask and collate the coming batches while the
    model trains (on an H200 at batch 256 that made the run 3.65x faster); the batches and
    the saved position are the same either way."""

    def __init__(self, dataset: PretrainingDataset, batch_size: int, procs: Processes, seed: int,
                 epoch: int = 0, offset: int = 0, workers: int = 0, group_by_length: bool = False):
        self.dataset, self.batch_size, self.procs, self.seed = dataset, batch_size, procs, seed
        self.lengths = dataset.lengths() if group_by_length else None
        self.global_batch = batch_size * procs.world
        if len(dataset) < self.global_batch:
            raise ValueError(f"{dataset.directory} has {len(dataset)} instances, fewer than one batch of "
                             f"{self.global_batch} (batch size x processes)")
        self.epoch, self.offset, self.workers = epoch, offset, workers
        self._batches = None  # the rest of the current epoch, from self.offset

    def position(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def _epoch_batches(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.dataset))
        if self.lengths is not None:
            order = grouped_by_length(order, self.lengths, self.global_batch, rng)
        self.dataset.set_epoch(self.epoch)
        first = self.procs.rank * self.batch_size
        # the incomplete last global batch is dropped
        indices = [order[start + first:start + first + self.batch_size].tolist()
                   for start in range(self.offset, len(self.dataset) - self.global_batch + 1, self.global_batch)]
        if not self.workers:
            return (self.dataset.collate([self.dataset[i] for i in batch]) for batch in indices)
        # a new loader each epoch: its workers copy the dataset, and with it the epoch's masking seed
        return iter(torch.utils.data.DataLoader(self.dataset, batch_sampler=indices, collate_fn=self.dataset.collate,
                                                num_workers=self.workers, prefetch_factor=4,
                                                pin_memory=self.procs.device.type == "cuda"))

    def next(self) -> dict[str, torch.Tensor]:
        if self._batches is None:
            self._batches = self._epoch_batches()
        batch = next(self._batches, None)
        if batch is None:  # the epoch is done (or was, at the saved offset)
            self.epoch, self.offset = self.epoch + 1, 0
            self._batches = self._epoch_batches()
            batch = next(self._batches)
        self.offset += self.global_batch
        return batch


def grouped_by_length(order: np.ndarray, lengths: np.ndarray, global_batch: int, rng: np.random.Generator,
                      pool_batches: int = 64) -> np.ndarray:
    """`order` with each run of `pool_batches` global batches sorted by length, then those batches
    shuffled: a batch is padded to its longest instance, so batches of like lengths pad less (short
    documents make short instances: the shared corpora fill 128-token rows to 68% on average)."""
    span = global_batch * pool_batches
    grouped = []
    for start in range(0, len(order), span):
        pool = order[start:start + span]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        whole = len(pool) - len(pool) % global_batch  # a last incomplete batch stays last (and is dropped)
        batches = pool[:whole].reshape(-1, global_batch)
        grouped += [batches[rng.permutation(len(batches))].ravel(), pool[whole:]]
    return np.concatenate(grouped)


# ---------------------------------------------------------------- model, optimizer, step


def build_model(config: PretrainConfig) -> tuple[AlbertForPreTraining, Path]:
    """The model and its vocabulary file (the --init-from model's, else the data's own)."""
    if config.init_from:
        model = AlbertForPreTraining.from_pretrained(config.init_from)
        vocab = Path(config.init_from) / "vocab.txt"
        if not vocab.is_file():
            vocab = Path(load_tokenizer().vocab_file)
        return model, vocab
    name = config.config or "tiny_google"
    model_config = AlbertConfig.from_json(name) if name.endswith(".json") else AlbertConfig.preset(name)
    model = AlbertForPreTraining(model_config)
    if config.init == "local":
        local_init(model)
    return model, Path(config.data) / "vocab.txt"


# The token each attention head looks at from the first step, relative to its own position.
LOCAL_OFFSETS = (-1, 1, -2, 2, -3, 3, -1, 1, -2, 2, -4, 4)


@torch.no_grad()
def local_init(model: AlbertForPreTraining, head_gain: float = 8.0):
    """Initial values that let a model from scratch read its neighbours at step 0; the architecture
    is untouched, so the result is a plain ALBERT of its config (EVALUATION.md, 'the plateau').

    With the usual random values every head attends uniformly, and the masked LM's logits vary by
    about 0.2 around its bias: the model learns the unigram distribution and stays there for
    thousands of steps. Here instead:
      1. the first 2F dimensions of the position embeddings hold sinusoids of F random frequencies
         (word and token-type embeddings are zero there); in the google layout the E->H mapping
         also passes the embedding through unchanged (identity plus its random values);
      2. head h's query is its key rotated by LOCAL_OFFSETS[h] positions on those dimensions, so
         that head attends to the token that many places away: an n-gram model's input from step 0;
      3. the MLM head's LayerNorm gain starts at `head_gain`, so what the context says moves the
         logits at once instead of after their weights have grown twentyfold.
    Every other weight keeps its random value, and all of them train as usual.
    """
    config, emb = model.config, model.albert.embeddings
    heads, head_size = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    width = emb.position_embeddings.weight.shape[1]  # E (google) or H (brightmart)
    freqs = min(head_size // 2, width // 4)  # F; the other dims keep the words
    dims = slice(0, 2 * freqs)
    if emb.embedding_projection is None:  # google: words live in E, then the E->H mapping
        word_energy = emb.word_embeddings.weight[:, 2 * freqs:].pow(2).sum(1).mean()
        emb.word_embeddings.weight[:, dims] = 0
        mapping = model.albert.encoder.embedding_hidden_mapping_in.weight  # (H, E)
        kept = min(mapping.shape)  # words and positions reach the first E hidden dims at full strength
        mapping[:kept, :kept] += torch.eye(kept)
    else:  # brightmart: words are projected to H before positions are added
        projection = emb.embedding_projection.weight  # (H, E)
        # its projected words are ~100x weaker than its H-sized positions: match the whole rest
        word_energy = ((emb.word_embeddings.weight @ projection[2 * freqs:].T).pow(2).sum(1).mean()
                       + emb.position_embeddings.weight[:, 2 * freqs:].pow(2).sum(1).mean())
        projection[dims] = 0
    emb.token_type_embeddings.weight[:, dims] = 0
    omega = torch.rand(freqs) * (math.pi - 0.3) + 0.3  # incommensurate: no aliasing at long distances
    angle = torch.arange(emb.position_embeddings.weight.shape[0])[:, None] * omega
    amplitude = (word_energy / freqs).sqrt()  # positions and words start with equal weight
    emb.position_embeddings.weight[:, 0:2 * freqs:2] = amplitude * angle.sin()
    emb.position_embeddings.weight[:, 1:2 * freqs:2] = amplitude * angle.cos()
    for attention in {id(m): m for m in model.modules() if isinstance(m, AlbertAttention)}.values():
        for h in range(heads):
            rows = slice(h * head_size, h * head_size + 2 * freqs)
            shift = LOCAL_OFFSETS[h % len(LOCAL_OFFSETS)] * omega
            cos, sin = shift.cos(), shift.sin()
            rotation = torch.zeros(2 * freqs, 2 * freqs)  # q . k_j = sum_f cos(w_f (i + offset - j))
            rotation[0::2, 0::2], rotation[0::2, 1::2] = torch.diag(cos), torch.diag(sin)
            rotation[1::2, 0::2], rotation[1::2, 1::2] = torch.diag(-sin), torch.diag(cos)
            attention.query.weight[rows, dims] += rotation
            attention.key.weight[rows, dims] += torch.eye(2 * freqs)
    model.predictions.LayerNorm.weight.fill_(head_gain)


def make_optimizer(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "lamb":
        return Lamb(parameter_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.999), eps=1e-6)
    adamw_settings = {"betas": (0.9, 0.999), "eps": 1e-6, "fused": True}
    if config.optimizer == "muon":
        return muon_adamw(model, config.lr, config.muon_lr, config.weight_decay, **adamw_settings)
    return adamw(model, config.lr, config.weight_decay, **adamw_settings)


STATS = ("mlm_loss_sum", "sop_loss_sum", "mlm_correct", "sop_correct", "masked", "sequences", "changed_correct",
         "changed")


def changed_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, P): masked positions whose input is not the label ([MASK] or a random token). The other
    tenth keeps its token, which a model can copy: only accuracy here shows that context is used."""
    labels = batch["masked_labels"]
    return (labels != -100) & (batch["input_ids"].gather(1, batch["masked_positions"]) != labels)


class ScoredVocab(NamedTuple):
    """The vocabulary ids the training loss scores, and each id's index among them (-100: not scored)."""
    ids: torch.Tensor
    index: torch.Tensor


def scored_vocab(ids: np.ndarray, vocab_size: int, device: torch.device) -> ScoredVocab:
    index = torch.full((vocab_size,), -100, dtype=torch.long)
    index[torch.from_numpy(ids)] = torch.arange(len(ids))
    return ScoredVocab(torch.from_numpy(ids).to(device), index.to(device))


# 5: the lowest held-out loss of the margins from 0 to 20 tried on two 30-minute runs (accuracy the same from 2 up)
UNSCORED_BIAS_MARGIN = 5.0


def fill_unscored_bias(model: AlbertForPreTraining, vocab: ScoredVocab):
    """From scratch, the ids the loss never scores keep their random decoder rows and a bias of 0,
    and would outrank the right answer at some positions (measured: 1.73x instead of 1.88x on
    held-out CLUE). Never seen in training, they get an output bias well below the lowest scored
    one. Training never reads these entries, so this may run at any time."""
    with torch.no_grad():
        bias = model.predictions.bias
        bias[vocab.index == -100] = bias[vocab.ids].min() - UNSCORED_BIAS_MARGIN


def forward_sums(model, batch: dict[str, torch.Tensor], autocast, vocab: ScoredVocab | None = None) -> torch.Tensor:
    """Summed losses and correct counts of one batch: a tensor in the order of STATS (with grad).
    With `vocab` the MLM scores only its ids (the labels must be among them)."""
    labels, sop = batch["masked_labels"], batch["sentence_order_label"]
    scored = {}
    if vocab is not None:
        labels = torch.where(labels == -100, labels, vocab.index[labels.clamp(min=0)])
        scored = {"vocab_ids": vocab.ids}
    with autocast:
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                    masked_positions=batch["masked_positions"], **scored)
    mlm_logits, sop_logits = out.mlm_logits.float().flatten(0, 1), out.sop_logits.float()
    flat = labels.flatten()
    mlm_sum = F.cross_entropy(mlm_logits, flat, ignore_index=-100, reduction="sum")
    sop_sum = F.cross_entropy(sop_logits, sop, reduction="sum")
    with torch.no_grad():
        counted = flat != -100
        correct = (mlm_logits.argmax(-1) == flat) & counted
        changed = changed_positions(batch).flatten()
        sop_correct = (sop_logits.argmax(-1) == sop).sum()
    return torch.stack([mlm_sum, sop_sum, correct.sum().float(), sop_correct.float(), counted.sum().float(),
                        torch.tensor(float(len(sop)), device=sop.device), (correct & changed).sum().float(),
                        changed.sum().float()])


def train_step(model, optimizer, micro_batches: list[dict], procs: Processes, autocast=contextlib.nullcontext(),
               scaler: torch.amp.GradScaler | None = None, max_grad_norm: float = 1.0,
               sop_weight: float = 1.0, sums=forward_sums) -> dict[str, float]:
    """One optimizer step over this rank's micro-batches; returns the step's metrics over all ranks.
    sums: `forward_sums` or a compiled copy of it."""
    counts = torch.tensor([sum(int((b["masked_labels"] != -100).sum()) for b in micro_batches),
                           sum(len(b["sentence_order_label"]) for b in micro_batches)], dtype=torch.float64)
    masked_total, sequences_total = procs.sum(counts.to(procs.device)).clamp(min=1).tolist()
    totals = torch.zeros(len(STATS), dtype=torch.float64, device=procs.device)
    for i, batch in enumerate(micro_batches):
        batch = {k: v.to(procs.device, non_blocking=True) for k, v in batch.items()}
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last or procs.world == 1 else model.no_sync():
            batch_sums = sums(model, batch, autocast)
            # DDP averages gradients over ranks; the world factor turns that average into the sum
            loss = (batch_sums[0] / masked_total + sop_weight * batch_sums[1] / sequences_total) * procs.world
            (scaler.scale(loss) if scaler else loss).backward()
        totals += batch_sums.detach().double()
    if scaler:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {**metrics_from_sums(procs.sum(totals).tolist()), "grad_norm": float(grad_norm)}


def metrics_from_sums(sums: list[float]) -> dict[str, float]:
    s = dict(zip(STATS, sums))
    masked, sequences = max(s["masked"], 1), max(s["sequences"], 1)
    mlm_loss, sop_loss = s["mlm_loss_sum"] / masked, s["sop_loss_sum"] / sequences
    return {"loss": mlm_loss + sop_loss, "mlm_loss": mlm_loss, "sop_loss": sop_loss,
            "mlm_accuracy": s["mlm_correct"] / masked, "sop_accuracy": s["sop_correct"] / sequences,
            "mlm_context_accuracy": s["changed_correct"] / max(s["changed"], 1)}


@torch.no_grad()
def evaluate(model: AlbertForPreTraining, dataset: PretrainingDataset, batch_size: int, procs: Processes,
             autocast=contextlib.nullcontext()) -> dict[str, float]:
    """MLM/SOP accuracy and loss on every instance of `dataset` (each rank takes a contiguous part),
    with the trivial baselines of this same data: always guessing the most frequent masked token;
    copying the input where it was kept and guessing the most frequent token elsewhere (what a
    model that reads no context scores); the majority SOP label."""
    was_training = model.training
    model.eval()
    dataset.set_epoch(0)
    totals = torch.zeros(len(STATS), dtype=torch.float64, device=procs.device)
    label_counts = torch.zeros(model.config.vocab_size, dtype=torch.float64, device=procs.device)
    changed_label_counts = torch.zeros_like(label_counts)
    swapped = torch.zeros((), dtype=torch.float64, device=procs.device)
    part = np.array_split(np.arange(len(dataset)), procs.world)[procs.rank]
    for start in range(0, len(part), batch_size):
        batch = dataset.collate([dataset[int(i)] for i in part[start:start + batch_size]])
        batch = {k: v.to(procs.device) for k, v in batch.items()}
        totals += forward_sums(model, batch, autocast).double()
        labels = batch["masked_labels"]
        label_counts += torch.bincount(labels[labels != -100], minlength=model.config.vocab_size).double()
        changed_label_counts += torch.bincount(labels[changed_positions(batch)],
                                               minlength=model.config.vocab_size).double()
        swapped += batch["sentence_order_label"].sum()
    model.train(was_training)
    sums = procs.sum(totals).tolist()
    label_counts, swapped = procs.sum(label_counts), float(procs.sum(swapped))
    context_guess = float(procs.sum(changed_label_counts).max())
    masked, sequences = max(sums[STATS.index("masked")], 1), max(sums[STATS.index("sequences")], 1)
    changed = sums[STATS.index("changed")]
    return {**metrics_from_sums(sums), "instances": int(sequences), "masked_tokens": int(masked),
            "mlm_most_frequent_token_accuracy": float(label_counts.max()) / masked,
            "mlm_copy_or_most_frequent_accuracy": (masked - changed + context_guess) / masked,
            "mlm_context_most_frequent_accuracy": context_guess / max(changed, 1),
            "sop_majority_accuracy": max(swapped, sequences - swapped) / sequences}


# ---------------------------------------------------------------- checkpoints


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a `.tmp` file is an unfinished write, never listed)."""
    folder = run_dir / CHECKPOINTS
    found = [p for p in folder.iterdir() if CHECKPOINT_NAME.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.name)


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write checkpoints/step-NNNNNNN.pt atomically (temporary name, fsync, rename), then drop all
    but the newest `keep`. On failure the temporary file is removed and the older ones remain."""
    folder = run_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{step:07d}.pt"
    try:
        write_atomic(target, lambda tmp: torch.save(state, tmp))
    except OSError as e:
        previous = [p.name for p in list_checkpoints(run_dir)]
        raise CheckpointSaveError(f"could not write {target} ({e.strerror or e}); the complete checkpoints "
                                  f"{previous or 'none'} are untouched: free space, then --resume") from e
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink()
    return target


def load_newest_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise FileNotFoundError(f"--resume: no complete checkpoint in {run_dir / CHECKPOINTS}")
    for path in reversed(checkpoints):
        try:
            return path, torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file: fall back to the one before
            log.warning("%s is unreadable (%s); trying the one before", path, e)
    raise ValueError(f"--resume: none of the checkpoints in {run_dir / CHECKPOINTS} can be read")


def check_same_model(saved: dict, current: dict, path: Path):
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differing:
        details = ", ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in differing)
        raise ValueError(f"{path} was written for another model config ({details})")


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------- metrics


class MetricsLog:
    """RUN_DIR/metrics.jsonl (and TensorBoard scalars when available); rank 0 only."""

    def __init__(self, run_dir: Path, resumed_step: int | None):
        self.path = run_dir / METRICS
        if resumed_step is not None and self.path.exists():
            # drop what the interrupted run logged after its last checkpoint: those steps run again
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resumed_step]
            write_atomic(self.path, lambda tmp: Path(tmp).write_text("".join(line + "\n" for line in kept)))
        self.file = open(self.path, "a")
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            log.info("tensorboard is not installed: metrics go to %s only", self.path)

    def write(self, record: dict):
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard and "step" in record:
            for key, value in record.items():
                if isinstance(value, float):
                    self.tensorboard.add_scalar(f"{record['split']}/{key}", value, record["step"])

    def close(self):
        self.file.close()
        if self.tensorboard:
            self.tensorboard.close()


# ---------------------------------------------------------------- the run


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a GPU (loss scaling); use bf16 on CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def pretrain(config: PretrainConfig) -> Path:
    """Train as configured; returns the exported model directory RUN_DIR/model."""
    procs = start_processes()
    try:
        export = _run(config, procs)
        if procs.world > 1:
            # the others wait while rank 0 exports: a rank that tore gloo down alone was seen to abort (SIGABRT)
            dist.barrier()
        return export
    finally:
        if procs.world > 1:
            dist.destroy_process_group()


def _run(config: PretrainConfig, procs: Processes) -> Path:
    run_dir = Path(config.out)
    if not Path(config.data).is_dir():
        raise FileNotFoundError(f"--data folder not found: {config.data}")
    for folder in filter(None, (config.data, config.eval_data)):
        read_manifest(folder)  # a folder that is not prepare-data's output is named as such, before any work
    if config.resume and not list_checkpoints(run_dir):
        raise FileNotFoundError(f"--resume: no complete checkpoint in {run_dir / CHECKPOINTS}")
    if not config.resume and list_checkpoints(run_dir):
        raise FileExistsError(f"{run_dir} already holds checkpoints: add --resume to continue, or choose another --out")

    torch.manual_seed(config.seed)
    model, vocab_file = build_model(config)
    vocab_hash = load_tokenizer(vocab_file).vocab_hash
    masked_lm_prob = config.masked_lm_prob
    if masked_lm_prob is None and read_manifest(config.data)["masking"] == "dynamic":
        masked_lm_prob = DYNAMIC_MASKED_LM_PROB
    dataset = open_dataset(config.data, vocab_hash, model.config.vocab_size, masked_lm_prob, config.ngram)
    if procs.main:
        log.info("training masks: %.0f%% of the tokens, up to %d per sequence, longest span %d word(s) (%s)",
                 100 * dataset.options.masked_lm_prob, dataset.options.max_predictions, dataset.options.ngram,
                 dataset.manifest["masking"])
    eval_set = open_dataset(config.eval_data, vocab_hash, model.config.vocab_size) if config.eval_data else None
    vocab = None
    if config.mlm_vocab == "data":
        vocab = scored_vocab(dataset.label_ids(), model.config.vocab_size, procs.device)
        if procs.main:
            log.info("the MLM loss scores the %d of %d vocabulary ids that the training data holds", len(vocab.ids),
                     model.config.vocab_size)
    # from scratch the unscored ids' output bias means nothing until fill_unscored_bias sets it
    fill_bias = vocab is not None and config.init_from is None
    model.to(procs.device).train()
    optimizer = make_optimizer(model, config)
    if procs.main and config.optimizer == "muon":
        log.info("optimizer: Muon at %.2g for the layers' %d weight matrices, AdamW at %.2g for the rest",
                 config.muon_lr, len(optimizer.optimizers[1].param_groups[0]["params"]), config.lr)
    schedule = warmup_polynomial_decay(config.warmup_steps, config.max_steps)
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    budget = config.max_minutes * 60 if config.max_minutes else math.inf

    def set_lr(step: int, elapsed: float) -> float:
        # with --max-minutes the schedule follows whichever limit comes first, so a time-limited run
        # still warms up over its first tenth and decays to 0 at its end
        factor = schedule(max(step, config.max_steps * elapsed / budget))
        for group, peak in zip(optimizer.param_groups, peak_lrs):
            group["lr"] = peak * factor
        return peak_lrs[0] * factor

    scaler = torch.amp.GradScaler(procs.device.type) if config.precision == "fp16" else None
    autocast = _autocast(config.precision, procs.device)
    torch.manual_seed(config.seed + 1 + procs.rank)  # dropout differs per rank

    step, position, elapsed = 0, {"epoch": 0, "offset": 0}, 0.0
    if config.resume:
        path, state = load_newest_checkpoint(run_dir)
        check_same_model(state["model_config"], model.config.to_dict(), path)
        saved = saved_config(run_dir)
        # another optimizer's state cannot load (runs that saved no config trained with AdamW)
        trained_with = saved.get("optimizer", "adamw")
        if trained_with != config.optimizer:
            raise SystemExit(f"{run_dir} was trained with --optimizer {trained_with}: pass --optimizer {trained_with} "
                             "to resume it")
        # runs started before --mlm-vocab data became the default scored every id
        earlier = saved.get("mlm_vocab", "all")
        if earlier != config.mlm_vocab and procs.main:
            log.warning("%s was trained with --mlm-vocab %s and resumes with %s: pass --mlm-vocab %s to keep its loss",
                        run_dir, earlier, config.mlm_vocab, earlier)
        spans = saved.get("ngram") or dataset.manifest["ngram"]  # none saved: the data's
        if dataset.dynamic and spans != dataset.options.ngram and procs.main:
            log.warning("%s was trained with masked spans of up to %d words and resumes with %d: pass --ngram %d "
                        "to keep its masks", run_dir, spans, dataset.options.ngram, spans)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler:
            scaler.load_state_dict(state["scaler"])
        if len(state["rng"]) == procs.world:
            set_rng_state(state["rng"][procs.rank], procs.device)
        else:
            log.warning("%s was written by %d processes, this run has %d: dropout RNG streams start afresh",
                        path, len(state["rng"]), procs.world)
        step, position, elapsed = state["step"], state["data"], state.get("elapsed", 0.0)
        if procs.main:
            log.info("resuming from %s (step %d, epoch %d)", path, step, position["epoch"])
    workers = config.loader_workers
    if workers is None:
        workers = min(4, max(1, (os.cpu_count() or 1) // procs.world - 1)) if procs.device.type == "cuda" else 0
    stream = BatchStream(dataset, config.batch_size, procs, config.seed, **position, workers=workers,
                         group_by_length=config.group_by_length)
    trained = DDP(model, procs) if procs.world > 1 else model
    # Compiled with the model, the losses over the vocabulary never hold the scores in fp32 (a
    # 1,632 x 21,128 tensor a step at batch 32 and 40% masking): 1.28x the steps of compiling the model alone on
    # 2 CPU cores. Checkpoints, evaluation and the export keep using `model`, the plain module.
    sums = functools.partial(forward_sums, vocab=vocab)
    sums = torch.compile(sums) if config.compile else sums

    if procs.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_json = json.dumps(dataclasses.asdict(config), indent=2) + "\n"
        write_atomic(run_dir / "pretrain_config.json", lambda tmp: Path(tmp).write_text(config_json))
    metrics = MetricsLog(run_dir, step if config.resume else None) if procs.main else None

    def checkpoint():
        if not config.keep_checkpoints:
            return
        if fill_bias:
            fill_unscored_bias(model, vocab)
        state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "elapsed": elapsed, "scaler": scaler.state_dict() if scaler else {},
                 "rng": procs.gather(rng_state(procs.device)), "data": stream.position(),
                 "model_config": model.config.to_dict()}
        if procs.main:
            save_checkpoint(run_dir, step, state, config.keep_checkpoints)

    def run_eval():
        if fill_bias:
            fill_unscored_bias(model, vocab)
        result = evaluate(model, eval_set, config.batch_size, procs, autocast)
        if procs.main:
            metrics.write({"split": "eval", "step": step, **result})
            log.info("step %d eval: MLM accuracy %.4f (where the input was changed %.4f, most frequent token "
                     "there %.4f), SOP accuracy %.4f, MLM loss %.4f, SOP loss %.4f", step, result["mlm_accuracy"],
                     result["mlm_context_accuracy"], result["mlm_context_most_frequent_accuracy"],
                     result["sop_accuracy"], result["mlm_loss"], result["sop_loss"])

    global_batch = config.batch_size * config.grad_accum * procs.world
    started = time.perf_counter() - elapsed  # --max-minutes counts the whole run, resumes included
    train_seconds, sequences, last_saved, last_eval = 0.0, 0, step, None
    bar = tqdm(total=config.max_steps, initial=step, desc="pretrain", unit="step", disable=not procs.main or None)
    # off a terminal the bar is off (in a file it is a run of carriage returns): a log line every tenth of the run
    log_every = max(1, config.max_steps // 10) if procs.main and bar.disable else 0
    try:
        while step < config.max_steps:
            tick = time.perf_counter()
            lr = set_lr(step, elapsed)
            result = train_step(trained, optimizer, [stream.next() for _ in range(config.grad_accum)], procs,
                                autocast, scaler, config.max_grad_norm, config.sop_weight, sums)
            step += 1
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            sequences += global_batch
            if procs.main:
                metrics.write({"split": "train", "step": step, "lr": lr, **result,
                               "sequences_per_second": global_batch / seconds})
                bar.update(1)
                bar.set_postfix_str(f"loss {result['loss']:.3f} lr {lr:.2e} {sequences / train_seconds:.1f} seq/s",
                                    refresh=False)
                if log_every and step % log_every == 0:
                    log.info("step %d/%d: loss %.3f, lr %.2e, %.1f sequences/s", step, config.max_steps,
                             result["loss"], lr, sequences / train_seconds)
            if step % config.save_every == 0:
                checkpoint()
                last_saved = step
            if eval_set is not None and step % config.eval_every == 0:
                run_eval()
                last_eval = step
            # every rank must set the same rate and stop at the same step: rank 0's clock decides
            clock = torch.tensor([time.perf_counter() - started], dtype=torch.float64, device=procs.device)
            if procs.world > 1:
                dist.broadcast(clock, 0)
            elapsed = clock.item()
            if elapsed > budget:
                if procs.main:
                    log.info("--max-minutes %g reached at step %d", config.max_minutes, step)
                break
    finally:
        bar.close()
    if last_saved != step:
        checkpoint()
    if eval_set is not None and last_eval != step:
        run_eval()
    export = run_dir / EXPORT
    if fill_bias:
        fill_unscored_bias(model, vocab)
    if procs.main:
        model.save_pretrained(export, vocab_file=vocab_file)
        summary = {"split": "summary", "step": step, "train_seconds": train_seconds,
                   "sequences_per_second": sequences / max(train_seconds, 1e-9),
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "processes": procs.world,
                   "global_batch": global_batch}
        if procs.device.type == "cuda":
            summary["peak_gpu_mib"] = torch.cuda.max_memory_allocated(procs.device) / 2**20
        metrics.write(summary)
        metrics.close()
        log.info("exported %s after %d steps (%.1f sequences/s, peak memory %.0f MiB)", export, step,
                 summary["sequences_per_second"], summary["peak_rss_mib"])
    return export


def DDP(model: torch.nn.Module, procs: Processes) -> torch.nn.Module:
    ids = [procs.device.index] if procs.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


# ---------------------------------------------------------------- curves


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """RUN_DIR/curves.png (or `out`): losses, accuracies and learning rate against steps (train and eval)."""
    fig = curves_figure(Path(run_dir))
    import matplotlib.pyplot as plt  # after curves_figure chose the Agg backend (no display needed)

    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def saved_config(run_dir: Path) -> dict:
    """The PretrainConfig the run last started with, as JSON ({} where the run has none)."""
    path = Path(run_dir) / "pretrain_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluated_on(run_dir: Path) -> str:
    """What the run's evaluation measured: held-out data, or its training data (--eval-data = --data)."""
    config = saved_config(run_dir)
    if config.get("eval_data") and Path(config["eval_data"]).resolve() == Path(config["data"]).resolve():
        return "eval on training data"
    return "held-out"


def curves_figure(run_dir: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = run_dir / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a pretraining run folder")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("split") == "train"]
    evals = [r for r in records if r.get("split") == "eval"]
    if not train:
        raise ValueError(f"{path} has no training steps yet")

    def smooth(values: list[float]) -> np.ndarray:  # mean over a window of ~1% of the run
        window = max(1, len(values) // 100)
        return np.convolve(values, np.ones(window) / window, mode="valid"), window

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    fig.suptitle(f"pretraining: {run_dir}")
    split = evaluated_on(run_dir)
    steps = np.array([r["step"] for r in train])
    for key, ax in (("mlm_loss", axes[0]), ("sop_loss", axes[0]), ("mlm_accuracy", axes[1]),
                    ("mlm_context_accuracy", axes[1]), ("sop_accuracy", axes[1])):
        if key not in train[-1]:  # runs logged before the metric existed
            continue
        values, window = smooth([r[key] for r in train])
        ax.plot(steps[window - 1:], values, label=f"train {key.replace('_', ' ')}")
        if evals:
            ax.plot([r["step"] for r in evals], [r[key] for r in evals], "o-", label=f"{split} {key.replace('_', ' ')}")
    if evals:
        axes[1].axhline(evals[-1]["mlm_most_frequent_token_accuracy"], color="grey", ls=":",
                        label="most frequent token")
        if "mlm_context_most_frequent_accuracy" in evals[-1]:  # the level of a model that reads no context
            axes[1].axhline(evals[-1]["mlm_context_most_frequent_accuracy"], color="black", ls=":",
                            label="most frequent token where the input was changed")
        axes[1].axhline(0.5, color="grey", ls="--", label="SOP chance")
    axes[2].plot(steps, [r["lr"] for r in train])
    for ax, title in zip(axes, ("MLM and SOP loss", "MLM and SOP accuracy", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
