"""Convert released ALBERT checkpoints into our model, without TensorFlow.

Explicit name tables from brightmart's and Google's TF variable names to our state-dict names
(HuggingFace transformers' ALBERT names), and `convert()`, which detects the format and layout,
checks every name and shape, and writes a `save_pretrained` directory. The TF files themselves
are read by `tf_checkpoint`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from albert_zh import checkpoint
from albert_zh.model import PRESETS, AlbertConfig, AlbertForPreTraining, read_config_json
from albert_zh.tf_checkpoint import (
    TFCheckpointError,
    read_bundle_index,
    read_bundle_tensors,
    resolve_checkpoint_prefix,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Name tables: TF variable -> our state-dict name (HuggingFace transformers' ALBERT names).
# A `Target` says where a TF tensor goes and whether it is transposed: TF dense kernels
# are [in, out], torch nn.Linear weights are [out, in].
# --------------------------------------------------------------------------------------


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message lists every problem found."""


@dataclass(frozen=True)
class Target:
    name: str
    transpose: bool = False


# Variables both layouts store under the same names.
COMMON_WEIGHTS = {
    "bert/embeddings/word_embeddings": Target("albert.embeddings.word_embeddings.weight"),
    "bert/embeddings/position_embeddings": Target("albert.embeddings.position_embeddings.weight"),
    "bert/embeddings/token_type_embeddings": Target("albert.embeddings.token_type_embeddings.weight"),
    "bert/embeddings/LayerNorm/gamma": Target("albert.embeddings.LayerNorm.weight"),
    "bert/embeddings/LayerNorm/beta": Target("albert.embeddings.LayerNorm.bias"),
    "bert/pooler/dense/kernel": Target("albert.pooler.weight", transpose=True),
    "bert/pooler/dense/bias": Target("albert.pooler.bias"),
    "cls/predictions/transform/dense/kernel": Target("predictions.dense.weight", transpose=True),
    "cls/predictions/transform/dense/bias": Target("predictions.dense.bias"),
    "cls/predictions/transform/LayerNorm/gamma": Target("predictions.LayerNorm.weight"),
    "cls/predictions/transform/LayerNorm/beta": Target("predictions.LayerNorm.bias"),
    "cls/predictions/output_bias": Target("predictions.bias"),
    # Already [2, H]: the original code multiplies by its transpose.
    "cls/seq_relationship/output_weights": Target("sop_classifier.classifier.weight"),
    "cls/seq_relationship/output_bias": Target("sop_classifier.classifier.bias"),
}

GOOGLE_WEIGHTS = {
    "bert/encoder/embedding_hidden_mapping_in/kernel":
        Target("albert.encoder.embedding_hidden_mapping_in.weight", transpose=True),
    "bert/encoder/embedding_hidden_mapping_in/bias":
        Target("albert.encoder.embedding_hidden_mapping_in.bias"),
}

BRIGHTMART_WEIGHTS = {
    # [E, H] in TF; our projection is nn.Linear(E, H, bias=False), weight [H, E].
    "bert/embeddings/word_embeddings_2":
        Target("albert.embeddings.embedding_projection.weight", transpose=True),
}

# Google: inside bert/encoder/transformer/group_{g}/inner_group_{i}/ -> inside one AlbertLayer.
GOOGLE_LAYER = {
    "attention_1/self/query/kernel": Target("attention.query.weight", transpose=True),
    "attention_1/self/query/bias": Target("attention.query.bias"),
    "attention_1/self/key/kernel": Target("attention.key.weight", transpose=True),
    "attention_1/self/key/bias": Target("attention.key.bias"),
    "attention_1/self/value/kernel": Target("attention.value.weight", transpose=True),
    "attention_1/self/value/bias": Target("attention.value.bias"),
    "attention_1/output/dense/kernel": Target("attention.dense.weight", transpose=True),
    "attention_1/output/dense/bias": Target("attention.dense.bias"),
    "LayerNorm/gamma": Target("attention.LayerNorm.weight"),
    "LayerNorm/beta": Target("attention.LayerNorm.bias"),
    "ffn_1/intermediate/dense/kernel": Target("ffn.weight", transpose=True),
    "ffn_1/intermediate/dense/bias": Target("ffn.bias"),
    "ffn_1/intermediate/output/dense/kernel": Target("ffn_output.weight", transpose=True),
    "ffn_1/intermediate/output/dense/bias": Target("ffn_output.bias"),
    "LayerNorm_1/gamma": Target("full_layer_layer_norm.weight"),
    "LayerNorm_1/beta": Target("full_layer_layer_norm.bias"),
}

# brightmart: a layer is three scopes (attention, intermediate, output); which of them are
# shared decides their names, see BRIGHTMART_SCOPES. Pre-LN uses the same names.
BRIGHTMART_LAYER = {
    "attention": {
        "self/query/kernel": Target("attention.query.weight", transpose=True),
        "self/query/bias": Target("attention.query.bias"),
        "self/key/kernel": Target("attention.key.weight", transpose=True),
        "self/key/bias": Target("attention.key.bias"),
        "self/value/kernel": Target("attention.value.weight", transpose=True),
        "self/value/bias": Target("attention.value.bias"),
        "output/dense/kernel": Target("attention.dense.weight", transpose=True),
        "output/dense/bias": Target("attention.dense.bias"),
        "output/LayerNorm/gamma": Target("attention.LayerNorm.weight"),
        "output/LayerNorm/beta": Target("attention.LayerNorm.bias"),
    },
    "intermediate": {
        "dense/kernel": Target("ffn.weight", transpose=True),
        "dense/bias": Target("ffn.bias"),
    },
    "output": {
        "dense/kernel": Target("ffn_output.weight", transpose=True),
        "dense/bias": Target("ffn_output.bias"),
        "LayerNorm/gamma": Target("full_layer_layer_norm.weight"),
        "LayerNorm/beta": Target("full_layer_layer_norm.bias"),
    },
}

# Scope of each part of layer {i} under bert/encoder/, per sharing mode (brightmart's
# `layer_scope`; its post-LN code names "all" and "none" the same way). A shared part is
# stored once and belongs to layer 0, as in our model (see model.SHARED_PARTS).
BRIGHTMART_SCOPES = {
    "all": {"attention": "layer_shared/attention", "intermediate": "layer_shared/intermediate",
            "output": "layer_shared/output"},
    "attention": {"attention": "layer_shared/attention",
                  "intermediate": "layer_shared/intermediate_{i}", "output": "layer_shared/output_{i}"},
    "ffn": {"attention": "layer_shared/attention_{i}",
            "intermediate": "layer_shared/intermediate", "output": "layer_shared/output"},
    "none": {"attention": "layer_{i}/attention", "intermediate": "layer_{i}/intermediate",
             "output": "layer_{i}/output"},
}

# Variables that are not model weights: dropped, and reported with the reason.
IGNORED_VARIABLES = [
    (re.compile(r"/adam_[mv]$"), "Adam optimizer slot"),
    (re.compile(r"lamb", re.I), "LAMB optimizer state"),
    (re.compile(r"^beta[12]_power$"), "Adam optimizer state"),
    (re.compile(r"^global_step$"), "training step counter"),
]


def ignore_reason(name: str) -> str | None:
    for pattern, reason in IGNORED_VARIABLES:
        if pattern.search(name):
            return reason
    return None


def _layer_prefix(group: int, inner: int = 0) -> str:
    return f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}."


def tf_weight_map(fmt: str, config) -> dict[str, Target]:
    """Every TF variable a checkpoint of format `fmt` ("google" or "brightmart") must hold
    for a model with `config`, mapped to our state-dict names."""
    table = dict(COMMON_WEIGHTS)
    if fmt == "google":
        table.update(GOOGLE_WEIGHTS)
        for g in range(config.num_hidden_groups):
            for i in range(config.inner_group_num):
                scope = f"bert/encoder/transformer/group_{g}/inner_group_{i}/"
                for suffix, target in GOOGLE_LAYER.items():
                    table[scope + suffix] = Target(_layer_prefix(g, i) + target.name, target.transpose)
    elif fmt == "brightmart":
        table.update(BRIGHTMART_WEIGHTS)
        scopes = BRIGHTMART_SCOPES[config.sharing]
        # Unshared models store one layer per application (model: num_hidden_groups == layers).
        layers = config.num_hidden_layers if config.sharing != "all" else 1
        for part, suffixes in BRIGHTMART_LAYER.items():
            for i in range(layers):
                if "{i}" not in scopes[part] and i > 0:
                    continue  # a shared part: stored once, for layer 0
                scope = "bert/encoder/" + scopes[part].format(i=i) + "/"
                for suffix, target in suffixes.items():
                    table[scope + suffix] = Target(_layer_prefix(i) + target.name, target.transpose)
    else:
        raise ValueError(f"no TF name table for format {fmt!r}")
    return table


# --------------------------------------------------------------------------------------
# Detection: format and layout from the variable names; the config from beside them.
# --------------------------------------------------------------------------------------

FORMATS = ("auto", "brightmart", "google", "hf")
_GOOGLE_LAYER_RE = re.compile(r"^bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/")
_BRIGHTMART_LAYER_RE = re.compile(
    r"^bert/encoder/(?:layer_shared|layer_(\d+))/(attention|intermediate|output)(?:_(\d+))?/")


@dataclass
class Layout:
    """What the variable names reveal. Layer-norm placement (`ln_type`) is not among it:
    pre-LN and post-LN checkpoints use the same names, so it comes from the config."""

    fmt: str
    sharing: str = "all"
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    layers_stored: int | None = None  # layers stored one by one (unshared parts), if any

    @property
    def embedding_layout(self) -> str:
        return self.fmt


def detect_tf_format(names) -> str:
    """"google" or "brightmart", from the variable names of a TF checkpoint."""
    names = [n for n in names if ignore_reason(n) is None]
    google = [n for n in names if n.startswith(("bert/encoder/transformer/",
                                                "bert/encoder/embedding_hidden_mapping_in/"))]
    brightmart = [n for n in names
                  if n == "bert/embeddings/word_embeddings_2" or _BRIGHTMART_LAYER_RE.match(n)]
    if google and brightmart:
        raise ConversionError(
            f"unknown checkpoint format: it mixes Google names ({google[0]}) and brightmart "
            f"names ({brightmart[0]})")
    if google:
        return "google"
    if brightmart:
        return "brightmart"
    sample = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    raise ConversionError(
        f"unknown checkpoint format: no ALBERT variables found ({sample or 'no variables'}). "
        "Expected brightmart names (bert/encoder/layer_shared/..., "
        "bert/embeddings/word_embeddings_2) or Google names (bert/encoder/transformer/group_0/...)")


def detect_layout(fmt: str, names) -> Layout:
    """Sharing and groups from the layer scopes. A guess for odd name sets is fine: the
    name table built from it then reports every variable that does not fit."""
    if fmt == "google":
        found = [tuple(map(int, m.groups())) for m in map(_GOOGLE_LAYER_RE.match, names) if m]
        groups = 1 + max((g for g, _ in found), default=0)
        inner = 1 + max((i for _, i in found), default=0)
        return Layout(fmt, "all", groups, inner)
    layer_ids, shared_parts, indexed = set(), set(), set()
    for m in filter(None, map(_BRIGHTMART_LAYER_RE.match, names)):
        layer, part, part_id = m.groups()
        if layer is not None:
            layer_ids.add(int(layer))
        elif part_id is None:
            shared_parts.add("attention" if part == "attention" else "ffn")
        else:
            indexed.add(int(part_id))
    if layer_ids:
        return Layout(fmt, "none", layers_stored=1 + max(layer_ids))
    stored = 1 + max(indexed) if indexed else None
    if shared_parts == {"attention"}:
        return Layout(fmt, "attention", layers_stored=stored)
    if shared_parts == {"ffn"}:
        return Layout(fmt, "ffn", layers_stored=stored)
    return Layout(fmt, "all")


def _find_config_file(folder: Path) -> Path:
    candidates = sorted(folder.glob("albert_config*.json"))
    if not candidates:  # some releases name it otherwise (bert_config.json, config.json)
        candidates = sorted(p for p in folder.glob("*config*.json")
                            if p.name != "tokenizer_config.json")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ConversionError(
            f"no albert_config*.json beside the checkpoint in {folder}; pass the release's "
            f"config with --config (or a preset name: {', '.join(PRESETS)})")
    raise ConversionError(
        f"several configs in {folder} ({', '.join(p.name for p in candidates)}); choose one "
        f"with --config")


def _load_config_source(config, folder: Path) -> tuple[AlbertConfig | None, dict, str]:
    """(config or None, the fields it states explicitly, where it came from)."""
    if isinstance(config, AlbertConfig):
        return config, dataclasses.asdict(config), "given AlbertConfig"
    if config is None:
        path = _find_config_file(folder)
    else:
        path = Path(config)
        if not path.is_file() and str(config) in PRESETS:
            return None, {}, f"preset {config}"
    return None, read_config_json(path), str(path)


def resolve_config(config, folder: Path, layout: Layout) -> tuple[AlbertConfig, str]:
    """The model config: the file (or preset / object) with the layout the names reveal.

    Layout fields the config states explicitly must agree with the checkpoint; those it does
    not state (brightmart's and Google's files cannot say) are taken from the names.
    """
    given, stated, source = _load_config_source(config, folder)
    detected = {"embedding_layout": layout.embedding_layout, "sharing": layout.sharing}
    if layout.fmt == "google":
        detected.update(num_hidden_groups=layout.num_hidden_groups,
                        inner_group_num=layout.inner_group_num)
    problems = [f"the config says {key}={stated[key]!r}, the checkpoint's variable names "
                f"say {value!r}" for key, value in detected.items()
                if key in stated and stated[key] != value]
    try:
        if given is not None:
            cfg = dataclasses.replace(given, **detected)
        elif source.startswith("preset "):
            cfg = AlbertConfig.preset(str(config), **detected)
        else:
            cfg = AlbertConfig.from_dict(stated, **detected)
    except (TypeError, ValueError) as err:
        problems.append(f"the config does not fit the checkpoint: {err}")
        cfg = None
    if cfg is not None and layout.layers_stored not in (None, cfg.num_hidden_layers):
        problems.append(
            f"the config says num_hidden_layers={cfg.num_hidden_layers}, the checkpoint stores "
            f"{layout.layers_stored} layers")
    if problems:
        raise ConversionError(f"config {source} disagrees with the checkpoint:\n  - "
                              + "\n  - ".join(problems))
    return cfg, source


# --------------------------------------------------------------------------------------
# convert(): SRC (TF checkpoint, HF folder, or an archive of either) -> OUT directory.
# --------------------------------------------------------------------------------------


@dataclass
class ConversionSummary:
    source: str
    out: str
    format: str
    config_source: str
    layout: dict
    parameters: int
    mapped: dict[str, str]  # source variable -> our parameter
    ignored: dict[str, str]  # source variable -> why it was dropped
    initialised: list[str] = field(default_factory=list)  # ours, absent from the source

    def __str__(self) -> str:
        layout = ", ".join(f"{k}={v}" for k, v in self.layout.items())
        lines = [
            f"converted {self.source} -> {self.out}",
            f"  format: {self.format}; config: {self.config_source}",
            f"  layout: {layout}",
            f"  parameters: {self.parameters:,}",
            f"  variables mapped: {len(self.mapped)}",
            f"  variables ignored: {len(self.ignored)}",
        ]
        reasons: dict[str, list[str]] = {}
        for name, reason in self.ignored.items():
            reasons.setdefault(reason, []).append(name)
        for reason, names in sorted(reasons.items()):
            example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            lines.append(f"    {len(names)} x {reason}: {example}")
        if self.initialised:
            lines.append(f"  newly initialised (not in the source): {', '.join(self.initialised)}")
        return "\n".join(lines)


def _layout_of(cfg: AlbertConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("embedding_layout", "ln_type", "sharing",
                                          "num_hidden_layers", "num_hidden_groups",
                                          "inner_group_num")}


def _is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / checkpoint.CONFIG_NAME).is_file() and any(
        (path / name).is_file() for name in (checkpoint.WEIGHTS_NAME,
                                             checkpoint.WEIGHTS_NAME + ".index.json",
                                             "pytorch_model.bin"))


def _is_tf_checkpoint(path: Path) -> bool:
    try:
        resolve_checkpoint_prefix(path)
    except TFCheckpointError:
        return False
    return True


def _extract_archive(archive: Path, into: Path) -> Path:
    """Unpack a released zip/tar and return the folder in it that holds the model."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            root = into.resolve()
            for member in zf.namelist():  # refuse members that would land outside `into`
                if not (into / member).resolve().is_relative_to(root):
                    raise ConversionError(f"{archive}: unsafe path in archive: {member}")
            zf.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(into, filter="data")  # refuses links and paths leaving `into`
            else:  # Python < 3.11.4 has no extraction filters: check the members here
                root = into.resolve()
                for member in tf.getmembers():
                    if (member.issym() or member.islnk() or member.isdev()
                            or not (into / member.name).resolve().is_relative_to(root)):
                        raise ConversionError(f"{archive}: unsafe member in archive: {member.name}")
                tf.extractall(into)
    else:
        raise ConversionError(f"{archive}: not a checkpoint, a folder, a zip or a tar archive")
    found = sorted({p.parent for p in into.rglob("*.index")} | {p.parent for p in into.rglob("checkpoint")}
                   | {p.parent for p in into.rglob(checkpoint.CONFIG_NAME) if _is_hf_dir(p.parent)})
    found = [p for p in found if "__MACOSX" not in p.parts]
    if len(found) != 1:
        where = ", ".join(str(p.relative_to(into)) for p in found)
        what = f"{len(found)} models ({where})" if found else "no model"
        raise ConversionError(f"{archive}: expected one checkpoint in the archive, found {what}")
    return found[0]


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConversionError(f"{out} already exists and is not an empty folder; choose another OUT")


def _save_atomically(model: AlbertForPreTraining, out: Path, vocab_file: Path | None,
                     extra_files: dict[str, str]) -> None:
    """Write OUT complete or not at all: save into a hidden sibling, then rename it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        model.save_pretrained(tmp, vocab_file=vocab_file)
        for name, text in extra_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked before converting
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _vocab_file(folder: Path, vocab_size: int) -> Path | None:
    """The release's vocab.txt if it ships one, else None (the bundled one), checked."""
    path = folder / checkpoint.VOCAB_NAME
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n != vocab_size:
            raise ConversionError(
                f"{path} has {n} tokens but the config says vocab_size={vocab_size}")
        return path
    bundled = resources.files("albert_zh") / "resources" / checkpoint.VOCAB_NAME
    with bundled.open(encoding="utf-8") as f:
        n = sum(1 for _ in f)
    if n != vocab_size:
        raise ConversionError(
            f"no vocab.txt beside the checkpoint in {folder}, and the bundled Chinese "
            f"vocabulary has {n} tokens, not vocab_size={vocab_size}; put the release's "
            f"vocab.txt there")
    logger.info("no vocab.txt beside the checkpoint: using the bundled Chinese vocabulary")
    return None


def _empty_model(cfg: AlbertConfig) -> AlbertForPreTraining:
    """The model with uninitialised storage: every parameter is overwritten from the
    checkpoint (checked by the caller), and random init of a large model takes seconds."""
    with torch.device("meta"):
        model = AlbertForPreTraining(cfg)
    if any(True for _ in model.buffers()):  # buffers would need their real values
        return AlbertForPreTraining(cfg)
    return model.to_empty(device="cpu")


def load_tf_model(src, config=None, fmt: str = "auto") -> tuple[AlbertForPreTraining, ConversionSummary]:
    """Our pretraining model with the weights of TF checkpoint `src`, every name and shape
    checked first; raises ConversionError listing all problems."""
    bundle = read_bundle_index(src)
    names = list(bundle.entries)
    detected = detect_tf_format(names)
    if fmt not in ("auto", detected):
        raise ConversionError(
            f"--format {fmt} was asked for, but {bundle.prefix} has {detected}-style names")
    layout = detect_layout(detected, names)
    cfg, config_source = resolve_config(config, bundle.prefix.parent, layout)
    table = tf_weight_map(detected, cfg)

    model = _empty_model(cfg)
    # named_parameters() lists a shared module once: under layer 0, as the tables do.
    params = dict(model.named_parameters())
    targets = {t.name for t in table.values()}
    if targets != set(params):  # the tables and model.py disagree: a bug here, not in SRC
        raise RuntimeError(
            f"name table out of step with the model: unmapped parameters "
            f"{sorted(set(params) - targets)}, unknown targets {sorted(targets - set(params))}")

    ignored = {n: r for n in names if (r := ignore_reason(n)) is not None}
    problems = []
    unplaceable = [n for n in names if n not in table and n not in ignored]
    if unplaceable:
        problems.append(f"{len(unplaceable)} variables that cannot be placed in a "
                        f"{detected}-layout model with this config:\n      "
                        + "\n      ".join(f"{n} {list(bundle.entries[n].shape)}" for n in unplaceable))
    missing = [n for n in table if n not in bundle.entries]
    if missing:
        problems.append(f"{len(missing)} variables the model needs are missing:\n      "
                        + "\n      ".join(missing))
    for tf_name, target in table.items():
        if tf_name not in bundle.entries:
            continue
        shape = bundle.entries[tf_name].shape
        ours = tuple(reversed(shape)) if target.transpose else shape
        expected = tuple(params[target.name].shape)
        if ours != expected:
            note = f" (transposed: {list(ours)})" if target.transpose else ""
            problems.append(f"shape mismatch: {tf_name} is {list(shape)}{note} in the "
                            f"checkpoint, the config makes {target.name} {list(expected)}")
    if problems:
        raise ConversionError(f"cannot convert {bundle.prefix} (config {config_source}):\n  - "
                              + "\n  - ".join(problems))

    tensors = read_bundle_tensors(bundle, table)
    with torch.no_grad():
        for tf_name, target in table.items():
            arr = tensors[tf_name]
            arr = np.ascontiguousarray(arr.T if target.transpose else arr)
            params[target.name].copy_(torch.from_numpy(arr))
    summary = ConversionSummary(
        source=str(bundle.prefix), out="", format=detected, config_source=config_source,
        layout=_layout_of(cfg), parameters=model.num_parameters(),
        mapped={n: t.name for n, t in table.items()}, ignored=ignored)
    return model, summary


def load_hf_model(src: Path, config=None) -> tuple[AlbertForPreTraining, ConversionSummary]:
    """Our pretraining model from a HuggingFace ALBERT folder (e.g. voidful/albert_chinese_*)."""
    if config is None:
        model = AlbertForPreTraining.from_pretrained(src)
        config_source = str(src / checkpoint.CONFIG_NAME)
    else:
        given, stated, config_source = _load_config_source(config, src)
        cfg = given or (AlbertConfig.preset(str(config)) if config_source.startswith("preset ")
                        else AlbertConfig.from_dict(stated))
        model = AlbertForPreTraining(cfg)
        checkpoint.load_into(model, src)
    found = list(checkpoint.read_weights(src))
    params = {n for n, _ in model.named_parameters()}

    def full(key: str) -> str:  # AlbertModel / AlbertForMaskedLM save without "albert."
        return key if key.startswith(("albert.",) + checkpoint.HEAD_PREFIXES) else "albert." + key

    mapped = {k: full(k) for k in found if full(k) in params}
    ignored = {k: "derived from other weights (tied or a buffer)" if k.endswith(checkpoint.DERIVED_KEYS)
               else "not part of the pretraining model" for k in found if full(k) not in params}
    summary = ConversionSummary(
        source=str(src), out="", format="hf", config_source=config_source,
        layout=_layout_of(model.config), parameters=model.num_parameters(), mapped=mapped,
        ignored=ignored, initialised=sorted(params - set(mapped.values())))
    return model, summary


def convert(src, out, config=None, fmt: str = "auto", to: str = "ours") -> ConversionSummary:
    """Convert a released checkpoint into a `save_pretrained` directory OUT.

    src: a TF checkpoint (folder with `checkpoint`, or a `*.ckpt` prefix) in brightmart or
        Google naming, a HuggingFace ALBERT folder, or a release's zip/tar of either.
    config: the release's albert_config*.json (default: the one beside the checkpoint), a
        preset name, or an AlbertConfig. `ln_type` (pre/post-LN) can only come from here.
    fmt: "auto", "brightmart", "google" or "hf"; anything but "auto" is checked.
    to: "ours", or "hf" to insist on a layout transformers' AlbertModel computes exactly,
        and to add a tokenizer_config.json naming BertTokenizer (the Chinese releases use
        BERT's WordPiece vocabulary, not AlbertTokenizer's sentencepiece).
    Nothing is written unless every variable is placed and every shape checked.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if to not in ("ours", "hf"):
        raise ValueError(f"to must be 'ours' or 'hf', got {to!r}")
    src, out = Path(src), Path(out)
    _prepare_out(out)
    with tempfile.TemporaryDirectory(prefix="albert_zh_convert_") as scratch:
        if src.is_file() and not _is_tf_checkpoint(src):
            src = _extract_archive(src, Path(scratch))
        if not src.exists() and not _is_tf_checkpoint(src):
            raise ConversionError(f"{src} does not exist")
        if fmt == "hf" or (fmt == "auto" and _is_hf_dir(src)):
            if not _is_hf_dir(src):
                raise ConversionError(f"--format hf: {src} is not a folder with config.json "
                                      f"and model.safetensors or pytorch_model.bin")
            model, summary = load_hf_model(src, config)
            folder = src
        elif _is_hf_dir(src) and not _is_tf_checkpoint(src):
            raise ConversionError(f"--format {fmt}: {src} is a HuggingFace folder, not a TF "
                                  f"checkpoint; use --format hf or auto")
        elif _is_tf_checkpoint(src):
            model, summary = load_tf_model(src, config, fmt)
            folder = resolve_checkpoint_prefix(src).parent
        else:
            raise ConversionError(
                f"unknown format: {src} is neither a TF checkpoint (a folder with a "
                f"`checkpoint` or *.index file, or a *.ckpt prefix) nor a HuggingFace folder "
                f"(config.json + model.safetensors / pytorch_model.bin)")
        vocab = _vocab_file(folder, model.config.vocab_size)
        extra = {}
        if to == "hf":
            if not model.config.hf_compatible:
                raise ConversionError(
                    f"--to hf: transformers' AlbertModel cannot compute this model "
                    f"(embedding_layout={model.config.embedding_layout}, ln_type="
                    f"{model.config.ln_type}, sharing={model.config.sharing}); only Google's "
                    f"layout with post-LN converts. Use the default output with albert_zh.")
            extra["tokenizer_config.json"] = json.dumps(
                {"tokenizer_class": "BertTokenizer", "do_lower_case": True,
                 "model_max_length": model.config.max_position_embeddings}, indent=2) + "\n"
        _save_atomically(model, out, vocab, extra)
    summary.out = str(out)
    logger.info("%s", summary)
    return summary
