"""Using a trained model from Python: `Classifier`, `SentenceSimilarity`, pooled embeddings and `EntityRecognizer`.

One mechanism for every backend (see backends.py): a function from padded id, mask and type
arrays to named output arrays. `torch` runs the model directory as it is; `onnx` and
`onnx-int8` and `litert` run the files `albert-zh export` writes into it (exported on first use
if absent).

    sim = SentenceSimilarity.load("models/lcqmc")
    sim.predict([("我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝")])   # -> [P(same meaning)]
    Classifier.load("models/chnsenticorp").predict(["这家酒店很干净"])  # -> [{"label", "probabilities"}]
    EntityRecognizer.load("models/cluener").predict(["浙商银行的叶老桂说"])
    # -> [[{"type": "company", "start": 0, "end": 4, "text": "浙商银行"}, {"type": "name", ...}]]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from albert_zh.backends import (
    BACKENDS,
    EXPORTED_FILES,
    Backend,
    is_classifier,
    is_token_classifier,
    open_exported,
    torch_backend,
)
from albert_zh.checkpoint import WEIGHTS_NAME, config_path
from albert_zh.crf import CRF
from albert_zh.export import export_litert, export_onnx
from albert_zh.model import AlbertConfig, decode_tags
from albert_zh.ner import encode_entities, entity_dicts, merge_windows, window_stride
from albert_zh.tasks import Example
from albert_zh.tokenizer import ChineseTokenizer, load_tokenizer

log = logging.getLogger(__name__)


def load_backend(model_dir: str | Path, backend: str = "torch", threads: int | None = None,
                 busy_wait: bool = True) -> Backend:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return torch_backend(model_dir, threads)
    path = Path(model_dir) / EXPORTED_FILES[backend]
    if not path.is_file():
        log.info("%s not found: exporting it now", path)
        if backend == "litert":
            export_litert(model_dir, path)
        else:
            export_onnx(model_dir, path, quantize="int8" if backend == "onnx-int8" else None)
    return open_exported(model_dir, backend, threads, busy_wait)


def _config_and_tokenizer(model_dir: Path, max_seq_length: int) -> tuple[AlbertConfig, ChineseTokenizer]:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    config = AlbertConfig.from_json(config_path(model_dir))
    if not 2 <= max_seq_length <= config.max_position_embeddings:
        raise ValueError(f"max_seq_length {max_seq_length} is outside 2..{config.max_position_embeddings}")
    return config, load_tokenizer(model_dir if (model_dir / "vocab.txt").is_file() else None)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


class Classifier:
    """Texts or (text_a, text_b) pairs -> labels and probabilities; pooled vectors with `embed`."""

    def __init__(self, backend: Backend, tokenizer: ChineseTokenizer, labels: Sequence[str] | None,
                 max_seq_length: int = 128, batch_size: int = 64):
        self.backend, self.tokenizer, self.labels = backend, tokenizer, list(labels) if labels else None
        self.max_seq_length, self.batch_size = max_seq_length, batch_size

    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "torch", max_seq_length: int = 128, batch_size: int = 64,
             threads: int | None = None, busy_wait: bool = True):
        model_dir = Path(model_dir)
        config, tokenizer = _config_and_tokenizer(model_dir, max_seq_length)
        if is_token_classifier(model_dir):
            raise ValueError(f"{model_dir} tags entities: load it with EntityRecognizer")
        labels = None
        if is_classifier(model_dir):
            id2label = getattr(config, "id2label", None) or {}
            labels = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(config.num_labels)]
        return cls(load_backend(model_dir, backend, threads, busy_wait), tokenizer, labels, max_seq_length, batch_size)

    def run(self, inputs: Sequence[str | tuple[str, str]], output: str) -> np.ndarray:
        """`output` ("logits" or "pooled_output") for every input, in input order. Inputs are
        batched by length, so a batch pads to a similar length."""
        if output == "logits" and self.labels is None:
            raise ValueError("this model has no classifier head (fine-tune it first); only embeddings are available")
        encoded = self.tokenizer([tuple(x) if not isinstance(x, str) else x for x in inputs],
                                 max_length=self.max_seq_length)
        lengths = np.array([sum(m) for m in encoded["attention_mask"]])
        order = np.argsort(lengths, kind="stable")
        results: list[np.ndarray | None] = [None] * len(inputs)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = int(lengths[rows].max())
            arrays = [np.array([encoded[key][r][:width] for r in rows], dtype=np.int64)
                      for key in ("input_ids", "attention_mask", "token_type_ids")]
            values = self.backend(*arrays)[output]
            for r, value in zip(rows, values, strict=True):
                results[r] = value
        return np.stack(results) if results else np.zeros((0, 0), np.float32)

    def predict_proba(self, inputs: Sequence[str | tuple[str, str]]) -> np.ndarray:
        return softmax(self.run(inputs, "logits"))

    def predict(self, inputs: Sequence[str | tuple[str, str]]) -> list[dict]:
        """[{"label": ..., "probabilities": {label: p}}] per input."""
        return [{"label": self.labels[int(p.argmax())],
                 "probabilities": {label: float(q) for label, q in zip(self.labels, p, strict=True)}}
                for p in self.predict_proba(inputs)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled output ([CLS] through the pooler) per text, (N, hidden_size)."""
        return self.run(texts, "pooled_output")


class SentenceSimilarity(Classifier):
    """A pair classifier (LCQMC style, label "1" = same meaning): P(same) per pair."""

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if self.labels is None or "1" not in self.labels:
            raise ValueError(f"not a similarity model: labels {self.labels} (expected a pair classifier with label '1')")
        for pair in pairs:
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"expected (sentence, sentence) pairs, got {pair!r}")
        return self.predict_proba(pairs)[:, self.labels.index("1")].tolist()


class EntityRecognizer:
    """Texts -> named entities, as character spans [start, end) of each text as given, whatever the
    tokenizer merged or dropped. A text longer than max_seq_length is read in overlapping windows
    (`stride` pieces shared, default half a window). With a CRF the tag path is decoded here, on the
    backend's tag scores, so every backend gives the same decoding."""

    def __init__(self, backend: Backend, tokenizer: ChineseTokenizer, id2tag: dict[int, str], crf: CRF | None = None,
                 max_seq_length: int = 128, stride: int | None = None, batch_size: int = 64):
        self.backend, self.tokenizer, self.id2tag, self.crf = backend, tokenizer, id2tag, crf
        self.max_seq_length, self.batch_size = max_seq_length, batch_size
        self.stride = window_stride(max_seq_length, stride)
        self.types = sorted({tag[2:] for tag in id2tag.values() if tag != "O"})

    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "torch", max_seq_length: int = 128, stride: int | None = None,
             batch_size: int = 64, threads: int | None = None, busy_wait: bool = True):
        model_dir = Path(model_dir)
        config, tokenizer = _config_and_tokenizer(model_dir, max_seq_length)
        if not is_token_classifier(model_dir):
            raise ValueError(f"{model_dir} is not an entity tagger (fine-tune one with --task cluener, msra_ner or ner)")
        crf = None
        if config.use_crf:
            crf = CRF(config.num_labels)
            crf.load_state_dict({k.removeprefix("crf."): v for k, v in load_file(model_dir / WEIGHTS_NAME).items()
                                 if k.startswith("crf.")})
        return cls(load_backend(model_dir, backend, threads, busy_wait), tokenizer, config.id2label, crf,
                   max_seq_length, stride, batch_size)

    def run(self, texts: Sequence[str], output: str = "entities") -> list[list[dict]]:
        """`predict` under the call the service's batcher makes of every model."""
        if output != "entities":
            raise ValueError(f"an entity tagger gives entities, not {output}")
        return self.predict(texts)

    def predict(self, texts: Sequence[str]) -> list[list[dict]]:
        """[{"type", "start", "end", "text"}] per text (end exclusive)."""
        examples = [Example(text, None, None, i, f"text {i}") for i, text in enumerate(texts)]
        data = encode_entities(examples, self.tokenizer, {}, self.max_seq_length, self.stride, labelled=False)
        window_tags: list[list[int] | None] = [None] * len(data)
        order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))  # batches of similar length
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(data.input_ids[r]) for r in rows)
            ids = np.full((len(rows), width), self.tokenizer.pad_id, np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for i, r in enumerate(rows):
                ids[i, :len(data.input_ids[r])] = data.input_ids[r]
                mask[i, :len(data.input_ids[r])] = 1
            logits = self.backend(ids, mask, np.zeros_like(ids))["logits"]
            tags = decode_tags(torch.from_numpy(logits), torch.from_numpy(mask), self.crf)
            for i, r in enumerate(rows):
                window_tags[r] = tags[i, :len(data.input_ids[r])].tolist()
        found = merge_windows(data, window_tags, self.id2tag)
        return [entity_dicts(text, entities) for text, entities in zip(texts, found, strict=True)]


def load_model(model_dir: str | Path, **options) -> Classifier | EntityRecognizer:
    """The Python object for a model directory: an EntityRecognizer for an entity tagger, else a Classifier."""
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    return (EntityRecognizer if is_token_classifier(model_dir) else Classifier).load(model_dir, **options)
