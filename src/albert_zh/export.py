"""`export`: a model directory -> ONNX (fp32 or int8) or LiteRT, checked against PyTorch after export.

The graph takes input_ids, attention_mask and token_type_ids of any batch size and sequence
length, and returns pooled_output (and logits for a fine-tuned classifier), or for an entity
tagger the tag scores of every token (a CRF's decoding runs after the graph). By default it is
then fused for onnxruntime (its transformer optimizer turns each attention block and GELU into
one op each; residual + LayerNorm stay two standard ops, see `_fuse_for_onnxruntime`);
`portable=True` keeps standard ONNX ops only, for other runtimes. Cross-layer sharing survives
export: each distinct weight is one initializer that every layer's nodes read, so the file is
about the size of model.safetensors, not num_layers times it. int8 is onnxruntime's dynamic
quantization of the weights of MatMul, Attention and Gather.
LiteRT (.tflite, for phones) goes through litert-torch (`pip install albert_zh[litert]`): one
sequence of a fixed length per call, as mobile runtimes prefer; shorter inputs are padded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from albert_zh.backends import INPUTS, ModelOutputs, litert_backend, load_torch_model, onnx_backend, require_extra
from albert_zh.checkpoint import write_atomic

FP32_TOLERANCE = 1e-4


@dataclass
class ExportReport:
    path: Path
    size_bytes: int
    weights_bytes: int  # model.safetensors, for comparison
    max_abs_diff: float  # against PyTorch on sample inputs
    quantize: str | None
    fused: bool = False  # onnxruntime's fused ops (not portable to other ONNX runtimes)

    def lines(self) -> list[str]:
        kind = "LiteRT fp32" if self.path.suffix == ".tflite" else (
            "ONNX int8 (dynamic quantization)" if self.quantize else "ONNX fp32")
        kind += ", fused for onnxruntime" if self.fused else ""
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
                max_seq_length: int = 128, portable: bool = False) -> ExportReport:
    """Write `out` (ONNX) from `model_dir`; checked against PyTorch before it is put in place.
    portable: standard ONNX ops only (no onnxruntime fusions)."""
    model_dir, out = Path(model_dir), Path(out)
    if quantize not in (None, "int8"):
        raise ValueError(f"--quantize {quantize!r}: only int8 is supported")
    require_extra("deploy", "onnx", "onnxruntime")  # before any work
    model = load_torch_model(model_dir)
    wrapped = ModelOutputs(model).eval()
    max_seq_length = min(max_seq_length, model.config.max_position_embeddings)
    samples = sample_inputs(model.config.vocab_size, shapes=((2, 16), (3, max_seq_length)))
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        example = tuple(torch.from_numpy(a) for a in samples[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on the input checks that become constants
            # The TorchScript exporter: it keeps a shared parameter as one initializer; the
            # dynamo exporter cannot trace the model's input checks (data-dependent branches).
            torch.onnx.export(wrapped, example, str(fp32), input_names=list(INPUTS), output_names=list(wrapped.names),
                              dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in INPUTS},
                                            **{n: {0: "batch", 1: "sequence"} if wrapped.per_token else {0: "batch"}
                                               for n in wrapped.names}},
                              opset_version=17, dynamo=False)
        _one_copy_of_each_weight(fp32)
        if not portable:
            _fuse_for_onnxruntime(fp32, model.config)
        path = fp32
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            path = Path(tmp) / "model.int8.onnx"
            with _quiet_logging():  # the quantizer logs a line per tensor
                # Shape inference knows no types for the fused ops' outputs: they are float.
                quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8,
                                 extra_options={"DefaultTensorType": 1})  # onnx.TensorProto.FLOAT
            _one_copy_of_each_weight(path)
        diff = _max_difference(wrapped, onnx_backend(path), samples)
        if not quantize and diff > FP32_TOLERANCE:
            raise RuntimeError(f"exported graph differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE}); not written")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp_path: os.replace(path, tmp_path))
    return ExportReport(out, out.stat().st_size, (model_dir / "model.safetensors").stat().st_size, diff, quantize,
                        fused=not portable)


def export_litert(model_dir: str | Path, out: str | Path, max_seq_length: int = 128) -> ExportReport:
    """Write `out` (.tflite, inputs int32 [1, max_seq_length]) from `model_dir`, checked against PyTorch."""
    require_extra("litert", "litert_torch", "ai_edge_litert")  # about 2 GB with JAX; Linux and macOS
    import litert_torch
    model_dir, out = Path(model_dir), Path(out)
    model = load_torch_model(model_dir)
    wrapped = ModelOutputs(model).eval()
    max_seq_length = min(max_seq_length, model.config.max_position_embeddings)
    samples = sample_inputs(model.config.vocab_size, shapes=((1, max_seq_length),))
    edge_model = litert_torch.convert(wrapped, tuple(torch.from_numpy(a) for a in samples[0]))
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        path = Path(tmp) / "model.tflite"
        edge_model.export(str(path))
        diff = _max_difference(wrapped, litert_backend(path, wrapped.names),
                               samples + sample_inputs(model.config.vocab_size, ((2, 9),), 1))
        if diff > FP32_TOLERANCE:
            raise RuntimeError(f"LiteRT model differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE}); not written")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp_path: os.replace(path, tmp_path))
    return ExportReport(out, out.stat().st_size, (model_dir / "model.safetensors").stat().st_size, diff, None)


def _one_copy_of_each_weight(path: Path):
    """Make every node read each distinct weight from one initializer. The exporter hands the
    shared layer's weights to layers 2..L through Identity nodes (and the quantizer and the fuser
    only treat initializers as weights); fusing and quantizing a shared layer give each layer
    its own, identical, tensors. Both are folded back to one copy here."""
    import onnx
    from onnx import numpy_helper

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    first_of = {}  # (dtype, shape, bytes) -> the first initializer with that content
    alias = {}
    for init in graph.initializer:
        key = (init.data_type, tuple(init.dims), numpy_helper.to_array(init).tobytes())
        alias[init.name] = first_of.setdefault(key, init.name)
    alias = {name: kept for name, kept in alias.items() if name != kept}
    weights = {i.name for i in graph.initializer}
    alias.update({n.output[0]: alias.get(n.input[0], n.input[0]) for n in graph.node
                  if n.op_type == "Identity" and n.input[0] in weights})
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]
    kept_nodes = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    kept_weights = [i for i in graph.initializer if i.name not in alias]
    del graph.initializer[:]
    graph.initializer.extend(kept_weights)
    onnx.save(graph_model, str(path))


def _fuse_for_onnxruntime(path: Path, config):
    """onnxruntime's transformer optimizer on the exported graph (com.microsoft ops: Attention,
    FastGelu). The model writes attention out when traced, the pattern this fuser recognises; a
    layer it does not match stays as it was, only slower. Residual + LayerNorm are left unfused:
    onnxruntime's CPU SkipLayerNormalization took 283 us at 1 x 128 x 312 where Add then
    LayerNormalization take 48 (onnxruntime 1.32), a third of the int8 model's time; the
    runtime must not fuse them either (`backends.onnx_backend`)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
    with _quiet_logging():
        fused = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=0, optimization_options=options)
        fused.save_model_to_file(str(path))
    _one_copy_of_each_weight(path)


@contextlib.contextmanager
def _quiet_logging():
    """onnxruntime's tools log per-tensor and per-pattern notes, to the root logger and to loggers
    of their own; only errors get through while they run."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _max_difference(wrapped: ModelOutputs, run, samples) -> float:
    diff = 0.0
    for arrays in samples:
        with torch.inference_mode():
            expected = wrapped(*(torch.from_numpy(a) for a in arrays))
        got = run(*arrays)
        diff = max(diff, *(float(np.abs(got[n] - e.numpy()).max()) for n, e in zip(wrapped.names, expected, strict=True)))
    return diff
