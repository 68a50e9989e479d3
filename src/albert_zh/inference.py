"""Using a trained model from Python: `Classifier`, `SentenceSimilarity` and pooled embeddings.

One mechanism for every backend: a backend is a function from padded id, mask and type arrays
to {"logits", "pooled_output"} arrays. `torch` runs the model directory as it is; `onnx` and
`onnx-int8` and `litert` run the files `albert-zh export` writes into it (exported on first use
if absent).

    sim = SentenceSimilarity.load("models/lcqmc")
    sim.predict([("我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝")])   # -> [P(same meaning)]
    Classifier.load("models/chnsenticorp").predict(["这家酒店很干净"])  # -> [{"label", "probabilities"}]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from albert_zh.checkpoint import config_path
from albert_zh.model import AlbertConfig, AlbertForSequenceClassification, AlbertModel
from albert_zh.tokenizer import ChineseTokenizer, load_tokenizer

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8", "litert")
EXPORTED_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "litert": "model.tflite"}

Backend = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def is_classifier(model_dir: str | Path) -> bool:
    """A fine-tuned directory names AlbertForSequenceClassification in config.json."""
    config = json.loads(config_path(model_dir).read_text(encoding="utf-8"))
    return "AlbertForSequenceClassification" in config.get("architectures", [])


def load_torch_model(model_dir: str | Path) -> torch.nn.Module:
    """The classifier of a fine-tuned directory, else the encoder alone (for embeddings)."""
    cls = AlbertForSequenceClassification if is_classifier(model_dir) else AlbertModel
    return cls.from_pretrained(model_dir).eval()


def torch_backend(model_dir: str | Path, threads: int | None = None) -> Backend:
    if threads:
        torch.set_num_threads(threads)
    model = load_torch_model(model_dir)
    encoder = model.albert if isinstance(model, AlbertForSequenceClassification) else model

    @torch.inference_mode()
    def run(input_ids, attention_mask, token_type_ids):
        pooled = encoder(*(torch.from_numpy(a) for a in (input_ids, attention_mask, token_type_ids))).pooled_output
        out = {"pooled_output": pooled.numpy()}
        if encoder is not model:
            out["logits"] = model.classifier(pooled).numpy()
        return out

    return run


def onnx_backend(path: str | Path, threads: int | None = None, busy_wait: bool = True) -> Backend:
    """busy_wait: onnxruntime's threads spin between calls, the lowest latency for one caller
    (tiny, 128 tokens: about 4 ms against about 5 ms without, in separate runs); off where other
    work needs the same cores, as in the HTTP service."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not busy_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(input_ids, attention_mask, token_type_ids):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return dict(zip(names, session.run(None, feed), strict=True))

    return run


def litert_backend(path: str | Path, threads: int | None = None) -> Backend:
    """A .tflite from `export --format litert`: fixed [1, L] int32 inputs, so each row is padded
    to L and run alone."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path), num_threads=threads or 2)
    runner = interpreter.get_signature_runner()
    inputs = sorted(runner.get_input_details())  # args_0, args_1, args_2: ids, mask, types
    length = int(runner.get_input_details()[inputs[0]]["shape"][1])
    outputs = sorted(runner.get_output_details())  # output_0, output_1: logits (classifiers), pooled

    def run(input_ids, attention_mask, token_type_ids):
        if input_ids.shape[1] > length:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the LiteRT model's fixed {length}")
        rows = []
        for arrays in zip(input_ids, attention_mask, token_type_ids, strict=True):
            padded = [np.pad(a, (0, length - len(a))).astype(np.int32)[None] for a in arrays]
            result = runner(**dict(zip(inputs, padded, strict=True)))
            rows.append([result[name][0] for name in outputs])
        values = [np.stack(column) for column in zip(*rows, strict=True)]
        names = ["logits", "pooled_output"] if len(values) == 2 else ["pooled_output"]
        return dict(zip(names, values, strict=True))

    return run


def load_backend(model_dir: str | Path, backend: str = "torch", threads: int | None = None,
                 busy_wait: bool = True) -> Backend:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return torch_backend(model_dir, threads)
    path = Path(model_dir) / EXPORTED_FILES[backend]
    if not path.is_file():
        from albert_zh.export import export_litert, export_onnx

        log.info("%s not found: exporting it now", path)
        if backend == "litert":
            export_litert(model_dir, path)
        else:
            export_onnx(model_dir, path, quantize="int8" if backend == "onnx-int8" else None)
    if backend == "litert":
        return litert_backend(path, threads)
    return onnx_backend(path, threads, busy_wait)


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
