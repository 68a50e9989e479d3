"""Checkpoint directories: config.json + model.safetensors + vocab.txt.

The same directory loads here and in HuggingFace transformers (for Google-layout models). Loading
is strict: every weight the model needs must be found with the right shape, and every weight
found must be used, except the pretraining/classifier heads that one model class has and another
lacks, which are reported. Pickles are never unpickled beyond plain tensors (weights_only=True).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
VOCAB_NAME = "vocab.txt"
HEAD_PREFIXES = ("predictions.", "sop_classifier.", "classifier.", "crf.")
# A checkpoint may carry weights a model does not use: heads, and the pooler (token classifiers have none).
UNUSED_PREFIXES = (*HEAD_PREFIXES, "albert.pooler.")
# Keys HF writes that are derived from others: buffers, and the decoder tied to the word embeddings.
DERIVED_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids", "predictions.decoder.weight", "predictions.decoder.bias")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message lists every offending key."""


def config_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG_NAME}; is it a model directory?")
    return path / CONFIG_NAME


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """model.safetensors (also sharded, with an index) or pytorch_model.bin, read without pickles."""
    if (path / WEIGHTS_NAME).is_file():
        return _load_safetensors(path / WEIGHTS_NAME)
    index = path / (WEIGHTS_NAME + ".index.json")
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in _load_safetensors(path / shard).items()}
    if (path / "pytorch_model.bin").is_file():
        try:
            return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a damaged or unsafe file
            raise CheckpointError(f"{path / 'pytorch_model.bin'} cannot be read: {e}") from e
    raise FileNotFoundError(f"{path} has no {WEIGHTS_NAME} or pytorch_model.bin")


def _load_safetensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(file)
    except SafetensorError as e:
        raise CheckpointError(f"{file} is not a readable safetensors file ({e}); was it cut short or overwritten?") from e


def _full_name(key: str) -> str:
    """Name a weight as the pretraining model does, whichever model class saved it."""
    return key if key.startswith(("albert.",) + HEAD_PREFIXES) else "albert." + key


def check_vocab(path: Path, vocab_size: int):
    vocab = path / VOCAB_NAME
    if vocab.is_file():
        with open(vocab, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n != vocab_size:
            raise ValueError(f"{vocab} has {n} tokens but the config says vocab_size={vocab_size}")


def load_into(model: torch.nn.Module, path: str | Path):
    """Copy the weights of directory `path` into `model`, strictly (see module docstring)."""
    path = Path(path)
    check_vocab(path, model.config.vocab_size)
    found = {_full_name(k): v for k, v in read_weights(path).items() if not k.endswith(DERIVED_KEYS)}
    prefix = "albert." if model.base_model_prefix == "" else ""
    # named_parameters() lists a shared parameter once: that is the name it is stored under.
    params = {prefix + name: p for name, p in model.named_parameters()}

    missing = [k for k in params if k not in found]
    unexpected = [k for k in found if k not in params]
    bad_missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    bad_unexpected = [k for k in unexpected if not k.startswith(UNUSED_PREFIXES)]
    mismatched = [f"{k}: checkpoint {tuple(found[k].shape)}, model {tuple(p.shape)}"
                  for k, p in params.items() if k in found and found[k].shape != p.shape]
    problems = []
    if bad_missing:
        problems.append(f"missing keys ({len(bad_missing)}): " + ", ".join(bad_missing))
    if bad_unexpected:
        problems.append(f"unexpected keys ({len(bad_unexpected)}): " + ", ".join(bad_unexpected))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if problems:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}:\n  " + "\n  ".join(problems))
    if unexpected:
        log.info("not used by %s: %s", type(model).__name__, _heads(unexpected))
    if missing:
        log.warning("newly initialised in %s (not in %s): %s", type(model).__name__, path, _heads(missing))
    with torch.no_grad():
        for k, p in params.items():
            if k in found:
                p.copy_(found[k])


def _heads(keys: list[str]) -> str:
    return ", ".join(sorted({k.split(".")[0] for k in keys}))


def save_directory(model: torch.nn.Module, path: str | Path, vocab_file: str | Path | None = None):
    """Write config.json, model.safetensors and vocab.txt; each file appears complete or not at all."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {**model.config.to_dict(), "architectures": [type(model).__name__]}
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()}
    write_atomic(path / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    write_atomic(path / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n"))
    source = Path(vocab_file) if vocab_file else resources.files("albert_zh") / "resources" / VOCAB_NAME
    write_atomic(path / VOCAB_NAME, lambda tmp: shutil.copyfile(source, tmp))


def write_atomic(target: Path, write):
    """`write(tmp_path)`, flushed to disk, then renamed onto target (and the rename flushed): a
    crash leaves the old file or the new one, never half of one. A failed write (a full disk)
    removes the temporary file and raises."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        write(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
