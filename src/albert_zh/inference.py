"""Using a trained model from Python: `Classifier`, `SentenceSimilarity` and pooled embeddings.

One mechanism for every backend (see backends.py): a function from padded id, mask and type
arrays to named output arrays. `torch` runs the model directory as it is; `onnx` and
`onnx-int8` and `litert` run the files `albert-zh export` writes into it (exported on first use
if absent).

    sim = SentenceSimilarity.load("models/lcqmc")
    sim.predict([("我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝")])   # -> [P(same meaning)]
    Classifier.load("models/chnsenticorp").predict(["这家酒店很干净"])  # -> [{"label", "probabilities"}]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from albert_zh.backends import BACKENDS, EXPORTED_FILES, Backend, is_classifier, open_exported, torch_backend
from albert_zh.checkpoint import config_path
from albert_zh.export import export_litert, export_onnx
from albert_zh.model import AlbertConfig
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
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model folder not found: {model_dir}")
        config = AlbertConfig.from_json(config_path(model_dir))
        if not 2 <= max_seq_length <= config.max_position_embeddings:
            raise ValueError(f"max_seq_length {max_seq_length} is outside 2..{config.max_position_embeddings}")
        labels = None
        if is_classifier(model_dir):
            id2label = getattr(config, "id2label", None) or {}
            labels = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(config.num_labels)]
        tokenizer = load_tokenizer(model_dir if (model_dir / "vocab.txt").is_file() else None)
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
