"""`export`: a model directory -> ONNX (fp32 or int8) or LiteRT, checked against PyTorch after export.

The graph takes input_ids, attention_mask and token_type_ids of any batch size and sequence
length, and returns pooled_output (and logits for a fine-tuned classifier). Cross-layer sharing
survives export: the shared layer's weights are one set of initializers that every layer's nodes
read, so the file is about the size of model.safetensors, not num_layers times it.
int8 is onnxruntime's dynamic quantization of the weights of MatMul and Gather.
LiteRT (.tflite, for phones) goes through litert-torch (`pip install albert_zh[litert]`): one
sequence of a fixed length per call, as mobile runtimes prefer; shorter inputs are padded.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from albert_zh.checkpoint import write_atomic
from albert_zh.inference import is_classifier, load_torch_model, onnx_backend
from albert_zh.model import AlbertForSequenceClassification

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
FP32_TOLERANCE = 1e-4


class _Outputs(torch.nn.Module):
    """The model with plain tensor outputs, the form the exporter takes."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.classifier = isinstance(model, AlbertForSequenceClassification)

    def forward(self, input_ids, attention_mask, token_type_ids):
        encoder = self.model.albert if self.classifier else self.model
        pooled = encoder(input_ids, attention_mask, token_type_ids).pooled_output
        return (self.model.classifier(pooled), pooled) if self.classifier else (pooled,)


@dataclass
class ExportReport:
    path: Path
    size_bytes: int
    weights_bytes: int  # model.safetensors, for comparison
    max_abs_diff: float  # against PyTorch on sample inputs
    quantize: str | None

    def lines(self) -> list[str]:
        kind = "LiteRT fp32" if self.path.suffix == ".tflite" else (
            "ONNX int8 (dynamic quantization)" if self.quantize else "ONNX fp32")
        return [f"{self.path}: {kind}, {self.size_bytes / 2**20:.2f} MB "
                f"({self.size_bytes / self.weights_bytes:.2f}x model.safetensors, {self.weights_bytes / 2**20:.2f} MB)",
                f"max |exported - PyTorch| on sample inputs: {self.max_abs_diff:.2e}"]


def sample_inputs(vocab_size: int, shapes=((2, 16), (3, 77)), seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Random ids with padding in the last row and both segments, in two shapes (so a graph that
    baked in one shape fails the check)."""
    rng = np.random.default_rng(seed)
    samples = []
    for batch, length in shapes:
        ids = rng.integers(5, vocab_size, (batch, length))
        mask = np.ones((batch, length), np.int64)
        mask[-1, length // 2:] = 0
        types = np.zeros((batch, length), np.int64)
        types[:, length // 3:] = 1
        samples.append((ids, mask, types))
    return samples


def export_onnx(model_dir: str | Path, out: str | Path, quantize: str | None = None,
                max_seq_length: int = 128) -> ExportReport:
    """Write `out` (ONNX) from `model_dir`; checked against PyTorch before it is put in place."""
    model_dir, out = Path(model_dir), Path(out)
    if quantize not in (None, "int8"):
        raise ValueError(f"--quantize {quantize!r}: only int8 is supported")
    model = load_torch_model(model_dir)
    wrapped = _Outputs(model).eval()
    names = ["logits", "pooled_output"] if is_classifier(model_dir) else ["pooled_output"]
    max_seq_length = min(max_seq_length, model.config.max_position_embeddings)
    samples = sample_inputs(model.config.vocab_size, shapes=((2, 16), (3, max_seq_length)))
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        example = tuple(torch.from_numpy(a) for a in samples[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on the input checks that become constants
            # The TorchScript exporter: it keeps a shared parameter as one initializer; the
            # dynamo exporter cannot trace the model's input checks (data-dependent branches).
            torch.onnx.export(wrapped, example, str(fp32), input_names=list(INPUTS), output_names=names,
                              dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in INPUTS},
                                            **{n: {0: "batch"} for n in names}},
                              opset_version=17, dynamo=False)
        _read_shared_weights_directly(fp32)
        path = fp32
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            path = Path(tmp) / "model.int8.onnx"
            quiet = logging.root.level
            logging.root.setLevel(logging.ERROR)  # the quantizer logs a line per tensor to the root logger
            try:
                quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
            finally:
                logging.root.setLevel(quiet)
        diff = _max_difference(wrapped, path, names, samples)
        if not quantize and diff > FP32_TOLERANCE:
            raise RuntimeError(f"exported graph differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE}); not written")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp_path: os.replace(path, tmp_path))
    report = ExportReport(out, out.stat().st_size, (model_dir / "model.safetensors").stat().st_size, diff, quantize)
    for line in report.lines():
        log.info("%s", line)
    return report


def export_litert(model_dir: str | Path, out: str | Path, max_seq_length: int = 128) -> ExportReport:
    """Write `out` (.tflite, inputs int32 [1, max_seq_length]) from `model_dir`, checked against PyTorch."""
    try:
        import litert_torch
    except ImportError:
        raise ValueError("LiteRT export needs litert-torch: pip install 'albert_zh[litert]' "
                         "(about 2 GB with JAX; Linux and macOS)") from None
    from albert_zh.inference import litert_backend

    model_dir, out = Path(model_dir), Path(out)
    model = load_torch_model(model_dir)
    wrapped = _Outputs(model).eval()
    names = ["logits", "pooled_output"] if is_classifier(model_dir) else ["pooled_output"]
    max_seq_length = min(max_seq_length, model.config.max_position_embeddings)
    samples = sample_inputs(model.config.vocab_size, shapes=((1, max_seq_length),))
    edge_model = litert_torch.convert(wrapped, tuple(torch.from_numpy(a) for a in samples[0]))
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        path = Path(tmp) / "model.tflite"
        edge_model.export(str(path))
        diff = _max_difference(wrapped, path, names, samples + sample_inputs(model.config.vocab_size, ((2, 9),), 1),
                               runner=litert_backend)
        if diff > FP32_TOLERANCE:
            raise RuntimeError(f"LiteRT model differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE}); not written")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp_path: os.replace(path, tmp_path))
    return ExportReport(out, out.stat().st_size, (model_dir / "model.safetensors").stat().st_size, diff, None)


def _read_shared_weights_directly(path: Path):
    """The exporter hands the shared layer's weights to layers 2..L through Identity nodes; the
    quantizer skips a MatMul whose weight is not an initializer, so point those MatMuls at the
    initializer itself (still one copy)."""
    import onnx

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    initializers = {i.name for i in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers}
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(graph_model, str(path))


def _max_difference(wrapped: torch.nn.Module, path: Path, names: list[str], samples, runner=onnx_backend) -> float:
    run = runner(path)
    diff = 0.0
    for arrays in samples:
        with torch.inference_mode():
            expected = wrapped(*(torch.from_numpy(a) for a in arrays))
        got = run(*arrays)
        diff = max(diff, *(float(np.abs(got[n] - e.numpy()).max()) for n, e in zip(names, expected, strict=True)))
    return diff
