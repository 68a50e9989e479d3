"""Runtime backends: PyTorch, ONNX Runtime and LiteRT behind one call signature.

A backend is a function from padded input_ids, attention_mask and token_type_ids arrays to a
dict of named output arrays, each as the model returns it (whatever its shape). Which outputs
a model has follows from its kind, named in config.json's `architectures`: `OUTPUTS` lists
them in the order the exported graphs return them, and `ModelOutputs` computes them in PyTorch,
for the torch backend and for the exporter alike. A new kind of model is one entry in each.

The modules above build on this one in one direction: export (writes the files these
runtimes read), then inference (Classifier, SentenceSimilarity), then serve and bench.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from albert_zh.checkpoint import config_path
from albert_zh.model import AlbertForSequenceClassification, AlbertForTokenClassification, AlbertModel

BACKENDS = ("torch", "onnx", "onnx-int8", "litert")
EXPORTED_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "litert": "model.tflite"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Each kind of model's outputs, in the exported graph's order; a directory that names no known
# head in `architectures` is an encoder (pretrained or converted), used for embeddings.
OUTPUTS = {AlbertForSequenceClassification: ("logits", "pooled_output"), AlbertModel: ("pooled_output",),
           AlbertForTokenClassification: ("logits",)}  # (batch, sequence, tags): a score per tag and token
MODEL_CLASSES = {cls.__name__: cls for cls in OUTPUTS if cls is not AlbertModel}

Backend = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def require_extra(extra: str, *modules: str):
    """Import `modules` now, or say which of the package's extras installs them."""
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise ValueError(f"this needs {module}, which is not installed: pip install 'albert_zh[{extra}]'") from None


def model_class(model_dir: str | Path) -> type:
    """The class a model directory's config.json names in `architectures`, else AlbertModel."""
    config = json.loads(config_path(model_dir).read_text(encoding="utf-8"))
    named = [MODEL_CLASSES[name] for name in config.get("architectures") or [] if name in MODEL_CLASSES]
    return named[0] if named else AlbertModel


def is_classifier(model_dir: str | Path) -> bool:
    return model_class(model_dir) is AlbertForSequenceClassification


def is_token_classifier(model_dir: str | Path) -> bool:
    return model_class(model_dir) is AlbertForTokenClassification


def output_names(model_dir: str | Path) -> tuple[str, ...]:
    return OUTPUTS[model_class(model_dir)]


def load_torch_model(model_dir: str | Path) -> torch.nn.Module:
    return model_class(model_dir).from_pretrained(model_dir).eval()


class ModelOutputs(torch.nn.Module):
    """A model with plain tensor outputs, named by `names`: the form the exporters take, and what
    the torch backend runs, so both compute the same thing."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.names = OUTPUTS[type(model)]
        self.per_token = isinstance(model, AlbertForTokenClassification)  # outputs have a sequence axis

    def forward(self, input_ids, attention_mask, token_type_ids):
        if isinstance(self.model, AlbertForSequenceClassification):  # logits from the pooled output, without dropout
            pooled = self.model.albert(input_ids, attention_mask, token_type_ids).pooled_output
            return self.model.classifier(pooled), pooled
        if self.per_token:  # the tag scores; a CRF's decoding runs outside the graph, on them
            return (self.model.classifier(self.model.albert(input_ids, attention_mask, token_type_ids).sequence_output),)
        return (self.model(input_ids, attention_mask, token_type_ids).pooled_output,)


def torch_backend(model_dir: str | Path, threads: int | None = None) -> Backend:
    if threads:
        torch.set_num_threads(threads)
    model = ModelOutputs(load_torch_model(model_dir)).eval()

    @torch.inference_mode()
    def run(input_ids, attention_mask, token_type_ids):
        outputs = model(*(torch.from_numpy(a) for a in (input_ids, attention_mask, token_type_ids)))
        return {name: value.numpy() for name, value in zip(model.names, outputs, strict=True)}

    return run


def onnx_backend(path: str | Path, threads: int | None = None, busy_wait: bool = True) -> Backend:
    """busy_wait: onnxruntime's threads spin between calls, the lowest latency for one caller
    (tiny, 128 tokens: about 4 ms against about 5 ms without, in separate runs); off where other
    work needs the same cores, as in the HTTP service."""
    require_extra("deploy", "onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not busy_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Add + LayerNormalization stay apart: onnxruntime's SkipLayerNormalization is far slower on
    # CPU (see export._fuse_for_onnxruntime)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=["SkipLayerNormFusion"])
    names = [o.name for o in session.get_outputs()]

    def run(input_ids, attention_mask, token_type_ids):
        feed = dict(zip(INPUTS, (input_ids, attention_mask, token_type_ids), strict=True))
        return dict(zip(names, session.run(None, feed), strict=True))

    return run


def litert_backend(path: str | Path, names: tuple[str, ...], threads: int | None = None) -> Backend:
    """A .tflite from `export --format litert`: fixed [1, L] int32 inputs, so each row is padded
    to L and run alone. The file keeps no output names: `names` gives them, in the graph's order."""
    require_extra("litert", "ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path), num_threads=threads or 2)
    runner = interpreter.get_signature_runner()
    inputs = sorted(runner.get_input_details())  # args_0, args_1, args_2: ids, mask, types
    length = int(runner.get_input_details()[inputs[0]]["shape"][1])
    outputs = sorted(runner.get_output_details())  # output_0, output_1, ...: in the order of `names`
    if len(outputs) != len(names):
        raise ValueError(f"{path} has {len(outputs)} outputs; expected {len(names)} ({', '.join(names)})")

    def run(input_ids, attention_mask, token_type_ids):
        if input_ids.shape[1] > length:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the LiteRT model's fixed {length}")
        rows = []
        for arrays in zip(input_ids, attention_mask, token_type_ids, strict=True):
            padded = [np.pad(a, (0, length - len(a))).astype(np.int32)[None] for a in arrays]
            result = runner(**dict(zip(inputs, padded, strict=True)))
            rows.append([result[name][0] for name in outputs])
        return {name: np.stack(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}

    return run


def open_exported(model_dir: str | Path, backend: str, threads: int | None = None, busy_wait: bool = True) -> Backend:
    """The runtime for MODEL_DIR's exported file of `backend` (which must exist)."""
    path = Path(model_dir) / EXPORTED_FILES[backend]
    if backend == "litert":
        return litert_backend(path, output_names(model_dir), threads)
    return onnx_backend(path, threads, busy_wait)
