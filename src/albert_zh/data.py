"""The prepared pretraining data on disk, and the dataset that memory-maps it.

A data directory holds `manifest.json`, `vocab.txt` and shards `shard-00000.npy`, ... Each
shard is a NumPy array of fixed-width records (one per instance) that `np.load(mmap_mode="r")`
opens without reading it. Static masking stores the masked ids with the masked positions and
labels; dynamic masking stores the original ids with packed word-start bits, and the dataset
masks them anew each epoch with a generator seeded by (seed, epoch, index), at the manifest's
rate or another one given when the dataset is opened.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from albert_zh.masking import MaskingOptions, mask_batch

FORMAT = "albert_zh-pretraining-v1"
MANIFEST = "manifest.json"
SHARD_PATTERN = "shard-{:05d}.npy"


def record_dtype(max_seq_length: int, max_predictions: int, masking: str, vocab_size: int) -> np.dtype:
    ids = np.uint16 if vocab_size <= 1 << 16 else np.int32
    fields = [("input_ids", ids, (max_seq_length,)), ("length", np.uint16), ("a_length", np.uint16),
              ("sop_label", np.uint8)]
    if masking == "static":
        fields += [("num_masked", np.uint16), ("masked_positions", np.uint16, (max_predictions,)),
                   ("masked_labels", ids, (max_predictions,))]
    else:
        fields += [("word_starts", np.uint8, ((max_seq_length + 7) // 8,))]
    return np.dtype(fields)


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        hint = " (an unfinished run: re-run prepare-data to resume it)" if (path.parent / "progress.json").exists() else ""
        raise FileNotFoundError(f"{path.parent} is not a prepared data directory (no {MANIFEST}){hint}: make one with "
                                f"`albert-zh prepare-data CORPUS --out {path.parent}`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def masking_options(manifest: dict) -> MaskingOptions:
    return MaskingOptions(masked_lm_prob=manifest["masked_lm_prob"], max_predictions=manifest["max_predictions"],
                          ngram=manifest["ngram"], mask_id=manifest["mask_id"], vocab_size=manifest["vocab_size"],
                          special_ids=tuple(manifest["special_ids"]))


class PretrainingDataset(torch.utils.data.Dataset):
    """Instances of a prepared data directory; batch them with `collate`.

    For dynamic masking call `set_epoch(e)` before each epoch (with DataLoader workers, leave
    persistent_workers off so the workers see the new epoch).
    """

    def __init__(self, directory: str | Path, seed: int | None = None, masked_lm_prob: float | None = None,
                 ngram: int | None = None):
        """masked_lm_prob, ngram: with dynamic masking, mask this fraction of the tokens (predicting up to
        that fraction of max_seq_length) in spans of 1..ngram words, instead of the manifest's; static
        masks cannot change."""
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.seed = self.manifest["seed"] if seed is None else seed
        self.epoch = 0
        self.dynamic = self.manifest["masking"] == "dynamic"
        self.options = masking_options(self.manifest)
        self.max_seq_length = self.manifest["max_seq_length"]
        changes = {name: value for name, value in (("masked_lm_prob", masked_lm_prob), ("ngram", ngram))
                   if value is not None and value != getattr(self.options, name)}
        if changes and not self.dynamic:
            raise ValueError(f"{self.directory} holds static masks (fixed by prepare-data: "
                             f"{self.options.masked_lm_prob:.0%} of the tokens in spans of up to {self.options.ngram} "
                             f"words); another masking rate or span length needs --masking dynamic")
        if "masked_lm_prob" in changes:
            changes["max_predictions"] = max(self.options.max_predictions, round(self.max_seq_length * masked_lm_prob))
        self.options = replace(self.options, **changes)
        self._ends = np.cumsum([shard["instances"] for shard in self.manifest["shards"]])
        self._shards: list[np.ndarray] | None = None  # opened lazily, once per process

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def check_vocabulary(self, vocab_hash: str):
        if vocab_hash != self.manifest["vocab_hash"]:
            raise ValueError(f"{self.directory} was prepared with another vocabulary "
                             f"(sha256 {self.manifest['vocab_hash'][:12]}..., tokenizer has {vocab_hash[:12]}...)")

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def lengths(self) -> np.ndarray:
        """The number of tokens of every instance, in index order."""
        return np.concatenate([shard["length"] for shard in self._opened()]).astype(np.int64)

    def label_ids(self) -> np.ndarray:
        """The sorted vocabulary ids a masked position of this data can have as its label: every id
        of the texts (dynamic masks) or of the stored labels (static), special tokens left out."""
        field = "input_ids" if self.dynamic else "masked_labels"
        seen = np.zeros(self.manifest["vocab_size"], dtype=bool)
        for shard in self._opened():
            for start in range(0, len(shard), 1 << 16):  # a slice at a time: shards can be larger than memory
                seen[np.unique(shard[start:start + (1 << 16)][field])] = True
        seen[self.manifest["special_ids"]] = False
        return np.flatnonzero(seen)

    def _opened(self) -> list[np.ndarray]:
        """The shards' memory maps, opened on first use in this process."""
        if self._shards is None:
            self._shards = self._open()
        return self._shards

    def _open(self) -> list[np.ndarray]:
        dtype = record_dtype(self.max_seq_length, self.manifest["max_predictions"], self.manifest["masking"],
                             self.manifest["vocab_size"])
        shards = []
        for shard in self.manifest["shards"]:
            array = np.load(self.directory / shard["file"], mmap_mode="r")
            if array.dtype != dtype or len(array) != shard["instances"]:
                raise ValueError(f"{self.directory / shard['file']}: {len(array)} records of {array.dtype}, "
                                 f"the manifest says {shard['instances']} of {dtype}")
            shards.append(array)
        return shards

    def __getstate__(self):
        # memory maps are reopened in each DataLoader worker rather than pickled
        return {**self.__dict__, "_shards": None}

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"instance {index} out of range ({len(self)})")
        shard = int(np.searchsorted(self._ends, index, side="right"))
        row = index - (int(self._ends[shard - 1]) if shard else 0)
        record = self._opened()[shard][row]
        length, a_length = int(record["length"]), int(record["a_length"])
        ids = record["input_ids"][:length].astype(np.int64)
        if self.dynamic:
            word_starts = np.unpackbits(record["word_starts"], count=self.max_seq_length)[:length].astype(bool)
            maskable = np.ones(length, dtype=bool)
            maskable[[0, a_length - 1, length - 1]] = False
            rng = np.random.default_rng([self.seed, self.epoch, index])
            masked = mask_batch(ids[None], word_starts[None], maskable[None], self.options, rng)
            count = int(masked.counts[0])
            ids, positions, labels = masked.input_ids[0], masked.positions[0, :count], masked.labels[0, :count]
        else:
            count = int(record["num_masked"])
            positions, labels = record["masked_positions"][:count], record["masked_labels"][:count]
        return {"input_ids": ids, "a_length": a_length, "masked_positions": positions.astype(np.int64),
                "masked_labels": labels.astype(np.int64), "sentence_order_label": int(record["sop_label"])}

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        return collate_pretraining(items, self.options.max_predictions, self.manifest["pad_id"])


def collate_pretraining(items: list[dict], max_predictions: int, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad to the batch's longest sequence (not max_seq_length: short batches cost less) and to
    `max_predictions` masked positions; unused label slots are -100."""
    width = max(len(item["input_ids"]) for item in items)
    batch = len(items)
    input_ids = np.full((batch, width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((batch, width), dtype=np.int64)
    token_type_ids = np.zeros((batch, width), dtype=np.int64)
    masked_positions = np.zeros((batch, max_predictions), dtype=np.int64)
    masked_labels = np.full((batch, max_predictions), -100, dtype=np.int64)
    for b, item in enumerate(items):
        length, count = len(item["input_ids"]), len(item["masked_positions"])
        input_ids[b, :length] = item["input_ids"]
        attention_mask[b, :length] = 1
        token_type_ids[b, item["a_length"]:length] = 1
        masked_positions[b, :count] = item["masked_positions"]
        masked_labels[b, :count] = item["masked_labels"]
    sentence_order_label = np.array([item["sentence_order_label"] for item in items], dtype=np.int64)
    return {name: torch.from_numpy(array) for name, array in (
        ("input_ids", input_ids), ("attention_mask", attention_mask), ("token_type_ids", token_type_ids),
        ("masked_positions", masked_positions), ("masked_labels", masked_labels),
        ("sentence_order_label", sentence_order_label))}
