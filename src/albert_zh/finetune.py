"""Fine-tuning, evaluation and prediction for every task in tasks.py, and the one-command CLUE run.

One mechanism for all tasks: a task's files are read into `Example`s (tasks.py), encoded once,
batched with padding to the longest member, and fed to `AlbertForSequenceClassification`, or for
named entities (kind "ner") to `AlbertForTokenClassification`, whose examples are encoded as
windows of word pieces with a tag each (ner.py). The same batched loop (`model_outputs`) scores
dev each epoch, `evaluate` and `predict`.
Training: AdamW with linear warmup and linear decay, dev evaluation every epoch, the best epoch
kept as a `save_pretrained` directory whose config carries the label map (`id2label`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import time
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from albert_zh import checkpoint
from albert_zh.model import (
    PRESETS,
    AlbertConfig,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    read_config_json,
)
from albert_zh.ner import (
    EncodedEntities,
    encode_entities,
    entity_dicts,
    entity_scores,
    merge_windows,
    tag_set,
    types_of,
    window_stride,
)
from albert_zh.optim import adamw, warmup_polynomial_decay
from albert_zh.tasks import (
    TASKS,
    Example,
    ReadResult,
    TaskSpec,
    custom_task,
    get_task,
    label_set,
    ner_task,
    read_examples,
    save_task,
    task_files,
)
from albert_zh.tokenizer import ChineseTokenizer, load_tokenizer

log = logging.getLogger(__name__)

BEST_DIR = "best"
RESULTS_NAME = "results.json"
CURVE_NAME = "curve.png"
TEST_PREDICTIONS = "test_predictions.jsonl"
CLUE_TASKS = ("afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc2020", "csl", "cluener")
MODEL_CLASSES = {"classification": AlbertForSequenceClassification, "ner": AlbertForTokenClassification}


@dataclass
class FinetuneConfig:
    task: str
    model: str  # preset name (random init), or a model directory
    out: str
    data_dir: str | None = None  # a task folder with the official file names ...
    train: str | None = None  # ... or the files one by one
    dev: str | None = None
    test: str | None = None
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-4
    max_seq_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    dropout: float | None = None  # classifier dropout; None keeps the model's
    seed: int = 42
    precision: str = "fp32"  # fp32 | bf16 (autocast on the CPU or GPU)
    patience: int | None = None  # stop after this many epochs without a better dev score
    strict: bool = False  # a bad row is an error instead of being skipped and counted
    threads: int | None = None
    # named entities only
    crf: bool = False  # a CRF layer over the tag scores
    stride: int | None = None  # pieces shared by consecutive windows of a long text; None: half a window
    # custom and ner tasks only
    file_format: str | None = None  # custom: csv | tsv | jsonl, ner: conll | spans; default from the extension
    text_a_col: str | None = None
    text_b_col: str | None = None
    label_col: str | None = None
    header: bool = False

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch size must be positive, and the learning rate above 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")
        if (self.data_dir is None) == (self.train is None):
            raise ValueError("give either --data-dir or --train and --dev")
        if self.train is not None and self.dev is None:
            raise ValueError("--train needs --dev (the best epoch is chosen on it)")

    def task_spec(self) -> TaskSpec:
        if self.task == "ner":
            return ner_task(self.file_format or ner_format_of(self.train or ""))
        if self.task != "custom":
            return get_task(self.task)
        if self.text_a_col is None or self.label_col is None:
            raise ValueError("task custom needs --text-a-col and --label-col (and --text-b-col for pairs)")
        train = self.train or ""
        return custom_task(self.file_format or format_of(train), self.text_a_col, self.text_b_col, self.label_col,
                           self.header)

    def files(self, spec: TaskSpec) -> dict[str, Path | None]:
        if self.data_dir is not None:
            return task_files(spec, self.data_dir)
        return {"train": Path(self.train), "dev": Path(self.dev), "test": Path(self.test) if self.test else None}


def format_of(path: str) -> str:
    """A custom file's format from its extension: .csv, .tsv/.txt, .json/.jsonl."""
    formats = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".json": "jsonl", ".jsonl": "jsonl"}
    suffix = Path(path).suffix.lower()
    if suffix not in formats:
        raise ValueError(f"cannot tell the format of {path!r} from its extension; pass --format csv|tsv|jsonl")
    return formats[suffix]


def ner_format_of(path: str) -> str:
    """An entity file's format from its extension: .json/.jsonl are spans, anything else conll."""
    return "spans" if Path(path).suffix.lower() in (".json", ".jsonl") else "conll"




# ---------------------------------------------------------------- encoding and batching

@dataclass
class Encoded:
    """A file's examples as token ids, ready to batch."""

    examples: list[Example]
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[int] | None  # None when any example is unlabelled

    def __len__(self):
        return len(self.examples)


def encode(examples: list[Example], tokenizer: ChineseTokenizer, label2id: dict[str, int], max_seq_length: int,
           labelled: bool = True) -> Encoded:
    firsts = tokenizer.encode_plain([e.text_a for e in examples])
    seconds = iter(tokenizer.encode_plain([e.text_b for e in examples if e.text_b is not None]))
    pairs = [tokenizer.encode_pair(a, next(seconds) if e.text_b is not None else None, max_seq_length)
             for a, e in zip(firsts, examples)]
    labels = None
    if labelled and examples and all(e.label is not None for e in examples):
        labels = [label2id[e.label] for e in examples]
    return Encoded(examples, [p["input_ids"] for p in pairs], [p["token_type_ids"] for p in pairs], labels)


def encode_task(spec: TaskSpec, examples: list[Example], tokenizer: ChineseTokenizer, label2id: dict[str, int],
                max_seq_length: int, stride: int | None = None, labelled: bool = True) -> Encoded | EncodedEntities:
    """Encode a task's examples: a sequence each, or for entities, windows of tagged pieces."""
    if spec.kind == "ner":
        return encode_entities(examples, tokenizer, label2id, max_seq_length, window_stride(max_seq_length, stride),
                               labelled)
    return encode(examples, tokenizer, label2id, max_seq_length, labelled)


def batches(data: Encoded | EncodedEntities, batch_size: int, pad_id: int, order: list[int] | None = None):
    """Yield dicts of tensors, each batch padded to its longest sequence (tags with -100)."""
    order = order if order is not None else range(len(data))
    order = list(order)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(data.input_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        types = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(data.input_ids[i])
            ids[row, :n] = torch.tensor(data.input_ids[i])
            types[row, :n] = torch.tensor(data.token_type_ids[i])
        batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": (ids != pad_id).long()}
        if isinstance(data, EncodedEntities) and data.labels is not None:
            batch["labels"] = torch.tensor([data.labels[i] + [-100] * (width - len(data.labels[i])) for i in idx])
        elif data.labels is not None:
            batch["labels"] = torch.tensor([data.labels[i] for i in idx])
        yield batch


# ---------------------------------------------------------------- evaluation (one loop for dev, evaluate, predict)

@torch.inference_mode()
def model_outputs(model, data: Encoded | EncodedEntities, batch_size: int = 128, pad_id: int = 0,
                  precision: str = "fp32", desc: str | None = None):
    """Yield (batch, logits) over `data` in order, the model in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    steps = math.ceil(len(data) / batch_size)
    device = model_device(model)
    # disable=None: no bar off a terminal, where it would write a run of carriage returns into the file
    for batch in tqdm(batches(data, batch_size, pad_id), total=steps, desc=desc, leave=False,
                      disable=True if desc is None else None):
        batch.pop("labels", None)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        yield batch, logits.float()  # on the model's device
    model.train(was_training)


def predict_probabilities(model: AlbertForSequenceClassification, data: Encoded, batch_size: int = 128,
                          pad_id: int = 0, precision: str = "fp32", desc: str | None = None) -> np.ndarray:
    """Class probabilities [examples, labels], in the examples' order."""
    out = [torch.softmax(logits, dim=-1).cpu().numpy()
           for _, logits in model_outputs(model, data, batch_size, pad_id, precision, desc)]
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


def predict_entities(model: AlbertForTokenClassification, data: EncodedEntities, batch_size: int = 128,
                     pad_id: int = 0, precision: str = "fp32", desc: str | None = None) -> list:
    """Entities per example (character spans of its text), its windows' tags merged."""
    window_tags = []
    for batch, logits in model_outputs(model, data, batch_size, pad_id, precision, desc):
        tags = model.decode(logits, batch["attention_mask"].to(logits.device)).cpu()
        window_tags += [row[:n].tolist() for row, n in zip(tags, batch["attention_mask"].sum(1).tolist())]
    return merge_windows(data, window_tags, model.config.id2label)


def score(spec: TaskSpec, model, data: Encoded | EncodedEntities, pad_id: int, precision: str = "fp32",
          desc: str | None = None) -> dict:
    """The task's dev/test metrics: classification accuracy and macro-F1, or entity P/R/F1."""
    if spec.kind == "ner":
        predicted = predict_entities(model, data, pad_id=pad_id, precision=precision, desc=desc)
        return entity_scores([e.entities for e in data.examples], predicted)
    probabilities = predict_probabilities(model, data, pad_id=pad_id, precision=precision, desc=desc)
    return metrics(probabilities, data.labels, model.config.num_labels)


def metrics(probabilities: np.ndarray, labels: list[int], num_labels: int) -> dict[str, float]:
    """Accuracy, macro-F1 over the classes present in gold or prediction, and mean cross-entropy."""
    gold = np.asarray(labels)
    pred = probabilities.argmax(axis=1)
    f1s = []
    for c in range(num_labels):
        tp = int(((pred == c) & (gold == c)).sum())
        fp = int(((pred == c) & (gold != c)).sum())
        fn = int(((pred != c) & (gold == c)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    loss = float(-np.log(np.clip(probabilities[np.arange(len(gold)), gold], 1e-12, None)).mean())
    return {"accuracy": float((pred == gold).mean()), "macro_f1": float(np.mean(f1s)), "loss": loss,
            "examples": len(gold)}


# ---------------------------------------------------------------- models

def load_classifier(model: str, labels: tuple[str, ...], dropout: float | None = None, kind: str = "classification",
                    crf: bool = False) -> tuple[AlbertForSequenceClassification | AlbertForTokenClassification,
                                                ChineseTokenizer]:
    """A classifier for `labels` (tags, for kind "ner") from a preset (random init) or a model
    directory (pretrained or fine-tuned)."""
    model_class = MODEL_CLASSES[kind]
    id2label = dict(enumerate(labels))
    overrides = {"num_labels": len(labels), "id2label": id2label}
    if dropout is not None:
        overrides["classifier_dropout_prob"] = dropout
    if crf:
        overrides["use_crf"] = True
    if model in PRESETS and not Path(model).is_dir():
        return model_class(AlbertConfig.preset(model, **overrides)), load_tokenizer()
    raw = read_config_json(checkpoint.config_path(model))
    config = AlbertConfig.from_dict(raw)
    fine_tuned = model_class.__name__ in raw.get("architectures", [])
    if fine_tuned and config.id2label and config.id2label != id2label:
        raise ValueError(f"{model} was fine-tuned for the labels {list(config.id2label.values())}, but the data has "
                         f"{list(labels)}; start from a pretrained (not fine-tuned) model")
    classifier = model_class.from_pretrained(model, **overrides)
    return classifier, load_tokenizer(model if (Path(model) / checkpoint.VOCAB_NAME).is_file() else None)


def load_finetuned(model_dir: str | Path) -> tuple[AlbertForSequenceClassification | AlbertForTokenClassification,
                                                   ChineseTokenizer]:
    """A fine-tuned directory (its config names the labels, its architecture the model class)."""
    raw = read_config_json(checkpoint.config_path(model_dir))
    if not raw.get("id2label"):
        raise ValueError(f"{model_dir} has no label map (config id2label); is it a fine-tuned model?")
    token = AlbertForTokenClassification.__name__ in raw.get("architectures", [])
    model_class = AlbertForTokenClassification if token else AlbertForSequenceClassification
    return model_class.from_pretrained(model_dir), load_tokenizer(model_dir)


# ---------------------------------------------------------------- training

def finetune(config: FinetuneConfig) -> dict:
    """Train, keep the best dev epoch in OUT/best, write OUT/results.json and OUT/curve.png; return the results."""
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    spec = config.task_spec()
    files = config.files(spec)
    read = {split: read_examples(spec, path, labelled=True, strict=config.strict)
            for split, path in files.items() if split != "test"}
    labels = label_set(spec, read["train"])
    if spec.labels is None:  # a custom task: the dev file may only use the training labels
        read["dev"] = read_examples(spec, files["dev"], labelled=True, strict=config.strict, labels=labels)
    for split in ("train", "dev"):
        if not read[split].examples:
            raise ValueError(f"{files[split]}: no usable examples")
    model_labels = tag_set(labels) if spec.kind == "ner" else labels
    label2id = {label: i for i, label in enumerate(model_labels)}

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    model, tokenizer = load_classifier(config.model, model_labels, config.dropout, spec.kind, config.crf)
    model.to("cuda" if torch.cuda.is_available() else "cpu")  # CUDA_VISIBLE_DEVICES= keeps it on the CPU
    train, dev = (encode_task(spec, read[split].examples, tokenizer, label2id, config.max_seq_length, config.stride)
                  for split in ("train", "dev"))

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer, scheduler = make_optimizer(model, config.lr, config.weight_decay, config.warmup_ratio, total_steps)
    order_rng = random.Random(config.seed)
    history, best, bad_epochs = [], None, 0
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = list(range(len(train)))
        order_rng.shuffle(order)
        losses = []
        bar = tqdm(batches(train, config.batch_size, tokenizer.pad_id, order), total=steps_per_epoch,
                   desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=None)  # off a terminal: the epoch's log line
        for batch in bar:
            losses.append(train_step(model, optimizer, scheduler, batch, config.precision))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        dev_metrics = score(spec, model, dev, tokenizer.pad_id, config.precision, desc="dev")
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                        **{f"dev_{k}": v for k, v in dev_metrics.items() if k not in ("examples", "per_type")}})
        log.info("epoch %d: train loss %.4f, dev %s %.4f", epoch, history[-1]["train_loss"], spec.metric,
                 dev_metrics[spec.metric])
        if best is None or dev_metrics[spec.metric] > best["dev"][spec.metric]:
            best, bad_epochs = {"epoch": epoch, "dev": dev_metrics}, 0
            save_best(model, tokenizer, spec, out / BEST_DIR)
        else:
            bad_epochs += 1
            if config.patience is not None and bad_epochs >= config.patience:
                log.info("no better dev %s for %d epochs: stopping early", spec.metric, bad_epochs)
                break
    same_file = files["dev"].resolve() == files["train"].resolve()
    plot_curve(history, out / CURVE_NAME, f"fine-tuning {spec.name}", "dev (= train file)" if same_file else "dev")

    results = {"task": spec.name, "labels": list(labels), "config": asdict(config), "history": history,
               "best_epoch": best["epoch"], "dev": best["dev"], "train_examples": len(read["train"].examples),
               "bad_rows": {s: len(r.bad_rows) for s, r in read.items()},
               "bad_row_list": [str(b) for r in read.values() for b in r.bad_rows]}
    if spec.kind == "ner":
        results["train_windows"] = len(train)
        results["lost_entities"] = untaggable(train, dev)
    if files["test"] is not None:
        results.update(test_with(spec, files["test"], out, config))
    results["minutes"] = (time.perf_counter() - started) / 60
    write_json_atomic(out / RESULTS_NAME, results)
    return results


def untaggable(*encoded: EncodedEntities) -> list[str]:
    """The gold entities no run of whole word pieces covers (an edge inside a piece): never learnt, and
    a dev or test file's count against recall."""
    lost = [f"{where}: {entity.type} [{entity.start}, {entity.end})" for data in encoded for where, entity in data.lost]
    if lost:
        log.warning("%d entities have an edge inside a word piece and cannot be tagged, e.g. %s", len(lost), lost[0])
    return lost


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, warmup_ratio: float, total_steps: int):
    """AdamW (no decay on biases and LayerNorm) with the original's schedule: linear warm-up, then
    linear decay to 0 at the last step (the pretraining schedule with power 1)."""
    optimizer = adamw(model, lr, weight_decay, fused=True)
    schedule = warmup_polynomial_decay(int(warmup_ratio * total_steps), total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_step(model, optimizer, scheduler, batch: dict, precision: str = "fp32") -> float:
    device = model_device(model)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**{k: v.to(device, non_blocking=True) for k, v in batch.items()}).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def save_best(model, tokenizer: ChineseTokenizer, spec: TaskSpec, path: Path):
    """Write the checkpoint (with the task it was trained on) beside, then swap it in, so a crash
    never leaves a half-written best."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, vocab_file=tokenizer.vocab_file)
    save_task(spec, tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def test_with(spec: TaskSpec, test_file: Path, out: Path, config: FinetuneConfig) -> dict:
    """Score a labelled test file with the best checkpoint; predict an unlabelled one (CLUE) into OUT."""
    # CLUE classification test files carry ids and no labels; other tasks' test files may have them or not
    examples = read_examples(spec, test_file, labelled=None).examples
    if spec.kind == "ner":
        unlabelled = any(e.entities is None for e in examples)
    else:
        unlabelled = spec.id_field is not None or any(e.label is None for e in examples)
    sizes = {"max_seq_length": config.max_seq_length, "stride": config.stride, "strict": config.strict}
    if unlabelled:
        predict(out / BEST_DIR, spec, test_file, out / TEST_PREDICTIONS, **sizes)
        return {"test_predictions": TEST_PREDICTIONS}
    return {"test": evaluate(out / BEST_DIR, spec, test_file, **sizes)}


def plot_curve(history: list[dict], path: Path, title: str = "fine-tuning", dev: str = "dev"):
    """Write loss and dev scores by epoch to `path`; `dev` names what the dev scores were measured on.
    Returns the (closed) figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    fig.suptitle(title)
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss (mean over the epoch)")
    if "dev_loss" in history[0]:
        left.plot(epochs, [h["dev_loss"] for h in history], "o-", label=f"{dev} loss")
    names = {"accuracy": "accuracy", "macro_f1": "macro-F1", "precision": "precision", "recall": "recall", "f1": "F1"}
    scores = [k for k in names if f"dev_{k}" in history[0]]  # classification, or entities
    for key in scores:
        right.plot(epochs, [h[f"dev_{key}"] for h in history], "o-", label=f"{dev} {names[key]}")
    scores_title = ", ".join(names[k] for k in scores[:-1]) + " and " + names[scores[-1]]
    for ax, panel in ((left, "loss"), (right, scores_title)):
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


def write_json_atomic(path: Path, obj):
    checkpoint.write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, ensure_ascii=False)))


# ---------------------------------------------------------------- evaluate / predict

def _read_for_model(model_dir, spec: TaskSpec, data, labelled, strict: bool):
    """The fine-tuned model, its tokenizer and label map (tag -> id), and the readable rows of `data`."""
    model, tokenizer = load_finetuned(model_dir)
    model_labels = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    labels = types_of(model_labels) if spec.kind == "ner" else model_labels
    if (spec.kind == "ner") != isinstance(model, AlbertForTokenClassification):
        raise ValueError(f"{model_dir} is a {type(model).__name__}, which does not fit task {spec.name}")
    if spec.labels is not None and set(spec.labels) != set(labels):
        raise ValueError(f"{model_dir} predicts the labels {list(labels)}, task {spec.name} has {list(spec.labels)}")
    read = read_examples(spec, data, labelled=labelled, strict=strict, labels=labels)
    if not read.examples:
        raise ValueError(f"{data}: no usable examples")
    return model, tokenizer, {label: i for i, label in enumerate(model_labels)}, read


def evaluate(model_dir, spec: TaskSpec, data, batch_size: int = 128, max_seq_length: int = 128,
             stride: int | None = None, strict: bool = False) -> dict:
    """Metrics of a fine-tuned model on a labelled file of the task's format; entity tasks add a
    per-type table. Bad rows are counted and listed (file:line: why)."""
    model, tokenizer, label2id, read = _read_for_model(model_dir, spec, data, True, strict)
    encoded = encode_task(spec, read.examples, tokenizer, label2id, max_seq_length, stride)
    return {**score(spec, model, encoded, tokenizer.pad_id, desc="evaluate"), **_bad_rows(read)}


def _bad_rows(read: ReadResult) -> dict:
    return {"bad_rows": len(read.bad_rows), "bad_row_list": [str(b) for b in read.bad_rows]}


def predict(model_dir, spec: TaskSpec, data, output, batch_size: int = 128, max_seq_length: int = 128,
            stride: int | None = None, strict: bool = False) -> int:
    """Write json lines for every usable row of `data`, {id, label, probabilities} or for entity tasks
    {id, text, entities: [{type, start, end, text}]} (end exclusive); return how many."""
    model, tokenizer, label2id, read = _read_for_model(model_dir, spec, data, False, strict)
    encoded = encode_task(spec, read.examples, tokenizer, label2id, max_seq_length, stride, labelled=False)
    if spec.kind == "ner":
        found = predict_entities(model, encoded, batch_size, tokenizer.pad_id, desc="predict")
        rows = [{"id": e.id, "text": e.text_a, "entities": entity_dicts(e.text_a, spans)}
                for e, spans in zip(read.examples, found)]
    else:
        labels = list(label2id)
        probs = predict_probabilities(model, encoded, batch_size, tokenizer.pad_id, desc="predict")
        rows = [{"id": e.id, "label": labels[int(p.argmax())],
                 "probabilities": {label: round(float(q), 6) for label, q in zip(labels, p)}}
                for e, p in zip(read.examples, probs)]
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_atomic(output, lambda tmp: Path(tmp).write_text("".join(line + "\n" for line in lines),
                                                                     encoding="utf-8"))
    return len(lines)


# ---------------------------------------------------------------- the CLUE run

@dataclass
class ClueConfig:
    data_dir: str  # holds one folder per task, named as the task (afqmc/, tnews/, ...)
    model: str
    out: str
    lrs: tuple[float, ...] = (2e-5, 6e-5, 1e-4)
    tasks: tuple[str, ...] = CLUE_TASKS
    epochs: int = 3
    batch_size: int = 64
    max_seq_length: int = 128
    seed: int = 42
    precision: str = "fp32"
    patience: int | None = None
    threads: int | None = None

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in TASKS or TASKS[t].submission is None]
        if unknown:
            raise ValueError(f"not CLUE classification tasks: {unknown}; choose from {', '.join(CLUE_TASKS)}")
        if not self.lrs:
            raise ValueError("give at least one learning rate")


def run_clue(config: ClueConfig) -> Path:
    """Each task folder present: fine-tune at every learning rate (skipping finished runs), pick the best
    by dev accuracy, write its submission file; then zip the submissions and write a results table.
    A failing task is reported in the table and does not stop the others. Returns the zip's path."""
    data_dir, out = Path(config.data_dir), Path(config.out)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"CLUE data folder not found: {data_dir}")
    present = [t for t in config.tasks if (data_dir / t).is_dir()]
    if not present:
        raise FileNotFoundError(f"{data_dir} has none of the task folders {', '.join(config.tasks)}")
    submissions = out / "submission"
    submissions.mkdir(parents=True, exist_ok=True)
    rows = {}
    for task in present:
        rows[task] = {}
        for lr in config.lrs:
            run_dir = out / task / f"lr{lr:g}"
            if (run_dir / RESULTS_NAME).is_file():
                log.info("%s at lr %g: finished before, skipped", task, lr)
                rows[task][lr] = json.loads((run_dir / RESULTS_NAME).read_text())
                continue
            try:
                rows[task][lr] = finetune(FinetuneConfig(
                    task=task, model=config.model, out=str(run_dir), data_dir=str(data_dir / task),
                    epochs=config.epochs, batch_size=config.batch_size, lr=lr, max_seq_length=config.max_seq_length,
                    seed=config.seed, precision=config.precision, patience=config.patience, threads=config.threads))
            except Exception as e:  # noqa: BLE001 -- one task's failure must not lose the others
                log.error("%s at lr %g failed: %s", task, lr, e)
                rows[task][lr] = {"error": f"{type(e).__name__}: {e}"}
        finished = {lr: r for lr, r in rows[task].items() if "dev" in r}
        if finished:
            best_lr = max(finished, key=lambda lr: finished[lr]["dev"][TASKS[task].metric])
            rows[task]["best"] = best_lr
            write_submission(TASKS[task], out / task / f"lr{best_lr:g}", submissions)
    table = clue_table(rows, config.lrs)
    checkpoint.write_atomic(out / "clue_results.md", lambda tmp: Path(tmp).write_text(table, encoding="utf-8"))
    zip_path = out / "clue_submission.zip"

    def write_zip(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(submissions.glob("*.json")):
                z.write(f, f.name)

    checkpoint.write_atomic(zip_path, write_zip)
    print(table)
    return zip_path


def write_submission(spec: TaskSpec, run_dir: Path, submissions: Path):
    """CLUE's format: one JSON object per line, {"id": ..., "label": ...}, in the test file's order;
    for CLUENER the label is {type: {entity text: [[start, end]]}} with the end inclusive."""
    predictions = run_dir / TEST_PREDICTIONS
    if not predictions.is_file():
        log.warning("%s: no test file, so no submission", spec.name)
        return
    lines = []
    for line in predictions.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        label = row["label"] if spec.kind != "ner" else {}
        for e in row.get("entities", ()):
            label.setdefault(e["type"], {}).setdefault(e["text"], []).append([e["start"], e["end"] - 1])
        lines.append(json.dumps({"id": row["id"], "label": label}, ensure_ascii=False))
    target = submissions / spec.submission
    checkpoint.write_atomic(target, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))


def clue_table(rows: dict, lrs) -> str:
    head = "| task | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | best |\n|---|" + "---:|" * len(lrs) + "---|\n"
    lines = []
    for task, by_lr in rows.items():
        cells = []
        for lr in lrs:
            r = by_lr.get(lr, {})
            cells.append(f"{r['dev'][TASKS[task].metric]:.4f}" if "dev" in r else "failed" if "error" in r else "")
        best = f"lr {by_lr['best']:g} -> {TASKS[task].submission}" if "best" in by_lr else "none"
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {best} |")
    return "Dev accuracy (CLUENER: entity F1) per task and learning rate.\n\n" + head + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- download

CLUE_DATA_URL = "https://storage.googleapis.com/cluebenchmark/tasks/{task}_public.zip"
# sha256 of each task's zip as published; None where it has not been recorded (the digest is then printed).
CHECKSUMS: dict[str, str | None] = {task: None for task in (*CLUE_TASKS, "xnli")}


def download(task: str, to: str | Path, url: str | None = None, sha256: str | None = None) -> Path:
    """Fetch a CLUE task's zip, check its sha256, unpack it into TO/TASK; return that folder."""
    if task not in CHECKSUMS:
        raise ValueError(f"no download for task {task!r}; available: {', '.join(CHECKSUMS)}")
    url = url or CLUE_DATA_URL.format(task=task)
    expected = sha256 or CHECKSUMS[task]
    target = Path(to) / task
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / (task + ".zip.part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=task, disable=None) as bar:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    if expected and digest.hexdigest() != expected:
        tmp.unlink()
        raise ValueError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {expected}")
    if not expected:
        log.warning("%s: no checksum on record; sha256 of what was fetched: %s", url, digest.hexdigest())
    with zipfile.ZipFile(tmp) as z:
        for member in z.infolist():
            name = Path(member.filename).name  # flatten the zip's folders; names only, never paths
            if member.is_dir() or not name:
                continue
            with z.open(member) as src, open(target / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    tmp.unlink()
    return target
