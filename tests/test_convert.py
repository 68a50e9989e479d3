"""Conversion of released checkpoints: the TF bundle reader/writer, the name tables, and the
converted models against independent references (the original TF code's outputs in
../shared, and HuggingFace transformers' ALBERT on the same random weights)."""

import json
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from albert_zh.convert import ConversionError, Target, convert, tf_weight_map
from albert_zh.model import AlbertConfig, AlbertForPreTraining
from albert_zh.tf_checkpoint import TFCheckpointError, read_tf_checkpoint, write_tf_checkpoint

try:
    import transformers
except ImportError:  # the reader and the reference tests do not need it
    transformers = None
GOOGLE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "google_albert"
needs_transformers = pytest.mark.skipif(transformers is None, reason="transformers not installed")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tf_checkpoints"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference TF checkpoints not present at {REFERENCE}")

# A small Google-layout config, in the released albert_config.json format.
SMALL_GOOGLE = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_attention_heads=4,
                    intermediate_size=37, max_position_embeddings=40, type_vocab_size=2,
                    num_hidden_layers=4, num_hidden_groups=1, inner_group_num=1,
                    hidden_act="gelu", hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, initializer_range=0.02)


def no_partial_outputs(parent: Path, out: Path) -> bool:
    return not out.exists() and not any(p.name.endswith(".partial") for p in parent.iterdir())


def example_inputs(vocab_size, batch=2, seq=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq - 3:] = 0
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, seq // 2:] = 1
    positions = torch.tensor([[1, 3, 4], [0, 2, 6]])
    return ids, mask, types, positions


def _damageable_checkpoint(tmp_path) -> Path:
    """A small writable checkpoint to damage (the reference files are read-only)."""
    folder = tmp_path / "ckpt"
    tensors = _brightmart_tensors(_small_brightmart_config())
    write_tf_checkpoint(folder / "albert_model.ckpt", tensors)
    _write_release_files(folder, _small_brightmart_config())
    return folder


def test_truncated_data_shard(tmp_path):
    folder = _damageable_checkpoint(tmp_path)
    shard = folder / "albert_model.ckpt.data-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(TFCheckpointError, match=r"data-00000-of-00001: truncated data shard"):
        read_tf_checkpoint(folder)
    out = tmp_path / "out"
    with pytest.raises(TFCheckpointError, match="truncated"):
        convert(folder, out)
    assert no_partial_outputs(tmp_path, out)


def test_corrupted_data_fails_its_checksum(tmp_path):
    folder = _damageable_checkpoint(tmp_path)
    shard = folder / "albert_model.ckpt.data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    with pytest.raises(TFCheckpointError, match="checksum mismatch for tensor"):
        read_tf_checkpoint(folder)


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic"])
def test_corrupted_index(tmp_path, damage):
    folder = _damageable_checkpoint(tmp_path)
    index = folder / "albert_model.ckpt.index"
    data = bytearray(index.read_bytes())
    if damage == "flip":
        data[40] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-1] ^= 0xFF
    index.write_bytes(bytes(data))
    with pytest.raises(TFCheckpointError, match=r"albert_model\.ckpt\.index: corrupted index"):
        read_tf_checkpoint(folder)
    out = tmp_path / "out"
    with pytest.raises(TFCheckpointError, match="corrupted index"):
        convert(folder, out)
    assert no_partial_outputs(tmp_path, out)


# ---- the reference checkpoints of the original TF code -------------------------------------

def assert_reproduces(model_dir: Path, reference: Path):
    """The converted model's outputs against those the original TF code saved beside its checkpoint."""
    model = AlbertForPreTraining.from_pretrained(model_dir).eval()
    inputs = np.load(reference / "inputs.npz")
    expected = np.load(reference / "outputs.npz")
    ids, mask, types, positions = (torch.from_numpy(inputs[k]).long() for k in
                                   ("input_ids", "input_mask", "segment_ids", "masked_lm_positions"))
    with torch.no_grad():
        sequence_output, pooled_output = model.albert(ids, mask, types)
        outputs = model(ids, mask, types, masked_positions=positions)
    real = inputs["input_mask"].astype(bool)
    got = {
        "sequence_output": sequence_output.numpy()[real],
        "pooled_output": pooled_output.numpy(),
        "mlm_log_probs": torch.log_softmax(outputs.mlm_logits, -1).numpy(),
        "sop_logits": outputs.sop_logits.numpy(),
        "sop_log_probs": torch.log_softmax(outputs.sop_logits, -1).numpy(),
    }
    compared = [name for name in got if name in expected]
    assert len(compared) == 4, compared
    for name in compared:
        value = expected[name][real] if name == "sequence_output" else expected[name]
        np.testing.assert_allclose(got[name], value, rtol=0, atol=5e-5, err_msg=name)


@needs_reference
@pytest.mark.parametrize("folder, ln_type", [("brightmart_tiny", "postln"),
                                             ("brightmart_tiny_preln", "preln")])
def test_converted_reference_reproduces_original_outputs(tmp_path, folder, ln_type):
    out = tmp_path / "out"
    summary = convert(REFERENCE / folder, out)
    assert summary.format == "brightmart" and summary.layout["ln_type"] == ln_type
    assert summary.layout["sharing"] == "all" and len(summary.mapped) == 31
    assert_reproduces(out, REFERENCE / folder)


# ---- Google naming: checkpoints written by Google's original code (tests/fixtures) --------

@pytest.mark.parametrize("folder, groups, inner", [("one_group", 1, 1), ("two_groups", 2, 2)])
def test_google_original_checkpoint_reproduces_original_outputs(tmp_path, folder, groups, inner):
    """Written by google-research/albert's modeling.py and run_pretraining.py heads under TF 2's
    compat.v1 (tests/fixtures/google_albert/make_fixture.py), with their outputs."""
    reference = GOOGLE_FIXTURES / folder
    summary = convert(reference, tmp_path / "out")
    assert summary.format == "google"
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (saved["num_hidden_groups"], saved["inner_group_num"]) == (groups, inner), saved
    assert (tmp_path / "out" / "vocab.txt").read_text() == (reference / "vocab.txt").read_text()
    assert_reproduces(tmp_path / "out", reference)


# ---- Google naming: a fixture built here, against transformers' ALBERT ---------------------

# transformers' parameter names -> Google's TF variable names, written independently of the
# converter's tables; kernels are transposed.
HF_TO_GOOGLE = {
    "albert.embeddings.word_embeddings.weight": "bert/embeddings/word_embeddings",
    "albert.embeddings.position_embeddings.weight": "bert/embeddings/position_embeddings",
    "albert.embeddings.token_type_embeddings.weight": "bert/embeddings/token_type_embeddings",
    "albert.embeddings.LayerNorm.weight": "bert/embeddings/LayerNorm/gamma",
    "albert.embeddings.LayerNorm.bias": "bert/embeddings/LayerNorm/beta",
    "albert.encoder.embedding_hidden_mapping_in.weight": "bert/encoder/embedding_hidden_mapping_in/kernel",
    "albert.encoder.embedding_hidden_mapping_in.bias": "bert/encoder/embedding_hidden_mapping_in/bias",
    "albert.pooler.weight": "bert/pooler/dense/kernel",
    "albert.pooler.bias": "bert/pooler/dense/bias",
    "predictions.dense.weight": "cls/predictions/transform/dense/kernel",
    "predictions.dense.bias": "cls/predictions/transform/dense/bias",
    "predictions.LayerNorm.weight": "cls/predictions/transform/LayerNorm/gamma",
    "predictions.LayerNorm.bias": "cls/predictions/transform/LayerNorm/beta",
    "predictions.bias": "cls/predictions/output_bias",
    "sop_classifier.classifier.weight": "cls/seq_relationship/output_weights",
    "sop_classifier.classifier.bias": "cls/seq_relationship/output_bias",
}
HF_TO_GOOGLE_LAYER = {
    "attention.query": "attention_1/self/query", "attention.key": "attention_1/self/key",
    "attention.value": "attention_1/self/value", "attention.dense": "attention_1/output/dense",
    "attention.LayerNorm": "LayerNorm", "ffn": "ffn_1/intermediate/dense",
    "ffn_output": "ffn_1/intermediate/output/dense", "full_layer_layer_norm": "LayerNorm_1",
}


def google_tensors_from_hf(state_dict) -> dict[str, np.ndarray]:
    tensors = {}
    for name, value in state_dict.items():
        if name.startswith("predictions.decoder.") or name.endswith("position_ids"):
            continue  # tied to the word embeddings / output bias, or a buffer
        m = re.match(r"albert\.encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\."
                     r"(.+)\.(weight|bias)$", name)
        if m:
            g, i, module, kind = m.groups()
            norm = "LayerNorm" in HF_TO_GOOGLE_LAYER[module]
            leaf = {"weight": "gamma" if norm else "kernel", "bias": "beta" if norm else "bias"}[kind]
            scope = f"bert/encoder/transformer/group_{g}/inner_group_{i}"
            tf_name = f"{scope}/{HF_TO_GOOGLE_LAYER[module]}/{leaf}"
        else:
            tf_name = HF_TO_GOOGLE[name]
        arr = value.detach().numpy()
        tensors[tf_name] = np.ascontiguousarray(arr.T if tf_name.endswith("/kernel") else arr)
    return tensors


def hf_model(config: dict, seed=0):
    hf_config = transformers.AlbertConfig(**{**config, "hidden_act": "gelu_new"})
    torch.manual_seed(seed)
    model = transformers.AlbertForPreTraining(hf_config).eval()
    with torch.no_grad():  # weights away from the init, so a swapped gain/bias is caught
        for name, p in model.named_parameters():
            p.normal_(0, 0.3 if p.dim() == 1 else 0.08)
            if name.endswith("LayerNorm.weight"):
                p.add_(1.0)
    return model


def _write_release_files(folder: Path, config: dict, config_name="albert_config.json"):
    (folder / config_name).write_text(json.dumps(config, indent=2))
    (folder / "vocab.txt").write_text("".join(f"tok{i}\n" for i in range(config["vocab_size"])))


def google_fixture(tmp_path, **overrides):
    """A Google-named TF checkpoint with optimizer slots, its config and vocab, as released."""
    config = {**SMALL_GOOGLE, **overrides}
    reference = hf_model(config)
    tensors = google_tensors_from_hf(reference.state_dict())
    for name in list(tensors)[:3]:
        tensors[name + "/adam_m"] = np.zeros_like(tensors[name])
        tensors[name + "/adam_v"] = np.zeros_like(tensors[name])
    tensors["global_step"] = np.array(1000, dtype=np.int64)
    folder = tmp_path / "albert_small_google_zh"
    write_tf_checkpoint(folder / "model.ckpt-1000", tensors)
    _write_release_files(folder, config)
    return folder, reference


def assert_same_outputs(ours, theirs, vocab_size, atol=1e-5):
    ids, mask, types, positions = example_inputs(vocab_size)
    with torch.no_grad():
        seq, pooled = ours.albert(ids, mask, types)
        out = ours(ids, mask, types, masked_positions=positions)
        ref = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types)
        ref_seq = theirs.albert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    torch.testing.assert_close(seq[real], ref_seq.last_hidden_state[real], rtol=0, atol=atol)
    torch.testing.assert_close(pooled, ref_seq.pooler_output, rtol=0, atol=atol)
    at_masks = ref.prediction_logits.gather(1, positions[..., None].expand(-1, -1, vocab_size))
    torch.testing.assert_close(out.mlm_logits, at_masks, rtol=0, atol=atol)
    torch.testing.assert_close(out.sop_logits, ref.sop_logits, rtol=0, atol=atol)


@needs_transformers
@pytest.mark.parametrize("groups", [(1, 1), (2, 2)])
def test_google_checkpoint_matches_transformers(tmp_path, groups):
    folder, reference = google_fixture(tmp_path, num_hidden_groups=groups[0], inner_group_num=groups[1])
    out = tmp_path / "out"
    summary = convert(folder, out)
    assert summary.format == "google"
    assert (summary.layout["num_hidden_groups"], summary.layout["inner_group_num"]) == groups
    assert summary.ignored["global_step"] == "training step counter"
    assert sum(r == "Adam optimizer slot" for r in summary.ignored.values()) == 6
    assert len(summary.mapped) == 16 + 16 * groups[0] * groups[1]  # 14 common + mapping_in
    assert str(out) in str(summary) and "variables ignored: 7" in str(summary)
    model = AlbertForPreTraining.from_pretrained(out).eval()
    assert_same_outputs(model, reference, SMALL_GOOGLE["vocab_size"])


@needs_transformers
def test_google_result_round_trips_through_transformers(tmp_path):
    """Our model -> save_pretrained -> transformers.from_pretrained: same outputs."""
    folder, _ = google_fixture(tmp_path)
    out = tmp_path / "out"
    convert(folder, out, to="hf")
    ours = AlbertForPreTraining.from_pretrained(out).eval()
    theirs = transformers.AlbertForPreTraining.from_pretrained(out).eval()
    assert_same_outputs(ours, theirs, SMALL_GOOGLE["vocab_size"])
    base = transformers.AlbertModel.from_pretrained(out).eval()
    ids, mask, types, _ = example_inputs(SMALL_GOOGLE["vocab_size"])
    with torch.no_grad():
        pooled = base(input_ids=ids, attention_mask=mask, token_type_ids=types).pooler_output
        torch.testing.assert_close(pooled, ours.albert(ids, mask, types).pooled_output, rtol=0, atol=1e-5)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert "Bert" in type(tokenizer).__name__


@needs_transformers
def test_google_names_match_the_original_code():
    """The fixture's names are those Google's code writes (google_tiny_variables.txt)."""
    path = REFERENCE / "google_tiny_variables.txt"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    tiny_google = AlbertConfig.preset("tiny_google")
    config = {k: getattr(tiny_google, k) for k in SMALL_GOOGLE if k != "hidden_act"}
    with torch.device("meta"):
        state = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config)).state_dict()
    names = {}
    for name, value in state.items():
        if name.startswith("predictions.decoder.") or name.endswith("position_ids"):
            continue
        tf_name = next(iter(google_tensors_from_hf({name: torch.zeros(1)})))
        names[tf_name] = tuple(value.shape[::-1]) if tf_name.endswith("/kernel") else tuple(value.shape)
    expected = {n: tuple(json.loads(s)) for n, s in
                (line.split("\t") for line in path.read_text().splitlines())}
    assert names == expected
    assert set(tf_weight_map("google", tiny_google)) == set(expected)


@needs_transformers
def test_hf_folder_as_source(tmp_path):
    reference = hf_model(SMALL_GOOGLE)
    src = tmp_path / "hf"
    reference.save_pretrained(src)
    _write_release_files(src, SMALL_GOOGLE, config_name="albert_config_unused.json")
    out = tmp_path / "out"
    summary = convert(src, out)
    assert summary.format == "hf" and summary.initialised == []
    converted = AlbertForPreTraining.from_pretrained(out).eval()
    assert_same_outputs(converted, reference, SMALL_GOOGLE["vocab_size"])


@needs_transformers
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_released_archive_as_source(tmp_path, kind):
    folder, reference = google_fixture(tmp_path)
    archive = tmp_path / f"release.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in folder.iterdir():
                zf.write(p, f"{folder.name}/{p.name}")
    else:
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(folder, arcname=folder.name)
    out = tmp_path / "out"
    assert convert(archive, out).format == "google"
    converted = AlbertForPreTraining.from_pretrained(out).eval()
    assert_same_outputs(converted, reference, SMALL_GOOGLE["vocab_size"])


# ---- brightmart naming and sharing modes, on fake tensors ----------------------------------

def _small_brightmart_config(**kw) -> dict:
    google_only = ("num_hidden_groups", "inner_group_num")
    return {k: v for k, v in SMALL_GOOGLE.items() if k not in google_only} | {"ln_type": "postln", **kw}


def _brightmart_tensors(config: dict, sharing="all", seed=0) -> dict[str, np.ndarray]:
    """Random tensors under every name the table expects, shaped from the model itself."""
    cfg = AlbertConfig.from_dict(config, sharing=sharing)
    params = dict(AlbertForPreTraining(cfg).named_parameters())
    rng = np.random.default_rng(seed)
    out = {}
    for tf_name, target in tf_weight_map("brightmart", cfg).items():
        shape = tuple(params[target.name].shape)
        out[tf_name] = rng.standard_normal(shape[::-1] if target.transpose else shape).astype(np.float32)
    return out


def test_brightmart_names_are_explicit():
    cfg = AlbertConfig.from_dict(_small_brightmart_config(), sharing="attention")
    table = tf_weight_map("brightmart", cfg)
    t = table["bert/encoder/layer_shared/intermediate_2/dense/kernel"]
    assert (t.name, t.transpose) == ("albert.encoder.albert_layer_groups.2.albert_layers.0.ffn.weight", True)
    t = table["bert/encoder/layer_shared/attention/output/LayerNorm/gamma"]
    assert t == Target("albert.encoder.albert_layer_groups.0.albert_layers.0.attention.LayerNorm.weight")
    t = table["bert/embeddings/word_embeddings_2"]
    assert (t.name, t.transpose) == ("albert.embeddings.embedding_projection.weight", True)
    assert table["cls/seq_relationship/output_weights"].transpose is False
    assert not any("attention_1" in n or "layer_shared/attention_" in n for n in table)


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
def test_brightmart_sharing_modes_detected_and_placed(tmp_path, sharing):
    config = _small_brightmart_config(num_hidden_layers=3)
    tensors = _brightmart_tensors(config, sharing)
    folder = tmp_path / "ckpt"
    write_tf_checkpoint(folder / "albert_model.ckpt", tensors)
    _write_release_files(folder, config)
    summary = convert(folder, tmp_path / "out")
    assert summary.layout["sharing"] == sharing and summary.layout["embedding_layout"] == "brightmart"
    model = AlbertForPreTraining.from_pretrained(tmp_path / "out")
    state = model.state_dict()
    cfg = AlbertConfig.from_dict(config, sharing=sharing)
    for tf_name, target in tf_weight_map("brightmart", cfg).items():
        expected = tensors[tf_name].T if target.transpose else tensors[tf_name]
        np.testing.assert_array_equal(state[target.name].numpy(), expected, err_msg=tf_name)
    if sharing == "attention":  # the shared part is one module, used by every layer
        groups = model.albert.encoder.albert_layer_groups
        assert groups[2].albert_layers[0].attention is groups[0].albert_layers[0].attention


# ---- bad input: every problem listed, nothing written --------------------------------------

def _brightmart_folder(tmp_path, tensors=None, config=None) -> Path:
    config = config or _small_brightmart_config()
    folder = tmp_path / "ckpt"
    write_tf_checkpoint(folder / "albert_model.ckpt", tensors or _brightmart_tensors(config))
    _write_release_files(folder, config)
    return folder


def test_unplaceable_variables_are_all_listed(tmp_path):
    tensors = _brightmart_tensors(_small_brightmart_config())
    tensors["bert/encoder/layer_shared/attention/self/extra/kernel"] = np.zeros((2, 2), np.float32)
    tensors["output_weights"] = np.zeros((2, 32), np.float32)
    tensors["cls/unknown/bias"] = np.zeros(3, np.float32)
    tensors["bert/encoder/layer_shared/intermediate/dense/bias/adam_m"] = np.zeros(37, np.float32)
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as err:
        convert(_brightmart_folder(tmp_path, tensors), out)
    message = str(err.value)
    assert "3 variables that cannot be placed" in message
    for name in ("self/extra/kernel", "output_weights", "cls/unknown/bias"):
        assert name in message
    assert "adam_m" not in message
    assert no_partial_outputs(tmp_path, out)


def test_missing_variable_and_shape_mismatch_name_both_shapes(tmp_path):
    tensors = _brightmart_tensors(_small_brightmart_config())
    del tensors["bert/pooler/dense/bias"]
    tensors["bert/encoder/layer_shared/output/dense/kernel"] = np.zeros((37, 31), np.float32)
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as err:
        convert(_brightmart_folder(tmp_path, tensors), out)
    message = str(err.value)
    assert "missing" in message and "bert/pooler/dense/bias" in message
    assert ("bert/encoder/layer_shared/output/dense/kernel is [37, 31]" in message
            and "[32, 37]" in message)
    assert no_partial_outputs(tmp_path, out)


@needs_transformers
def test_unknown_format(tmp_path):
    write_tf_checkpoint(tmp_path / "ckpt" / "model.ckpt",
                        {"model/dense/kernel": np.zeros((2, 2), np.float32)})
    with pytest.raises(ConversionError, match="unknown checkpoint format.*model/dense/kernel"):
        convert(tmp_path / "ckpt", tmp_path / "out")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hi")
    with pytest.raises(ConversionError, match="unknown format"):
        convert(tmp_path / "stuff", tmp_path / "out")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ConversionError, match="not a checkpoint"):
        convert(tmp_path / "weights.bin", tmp_path / "out")
    with pytest.raises(ConversionError, match="google-style names"):
        convert(google_fixture(tmp_path)[0], tmp_path / "out", fmt="brightmart")
    assert no_partial_outputs(tmp_path, tmp_path / "out")


@needs_transformers
def test_config_disagreeing_with_checkpoint(tmp_path):
    folder = _brightmart_folder(tmp_path)
    out = tmp_path / "out"
    other = tmp_path / "other_config.json"
    other.write_text(json.dumps(_small_brightmart_config(hidden_size=48)))
    with pytest.raises(ConversionError) as err:
        convert(folder, out, config=other)
    assert "shape mismatch" in str(err.value) and "[48, 48]" in str(err.value)

    google, _ = google_fixture(tmp_path, num_hidden_groups=2)
    stated = tmp_path / "groups1.json"
    stated.write_text(json.dumps({**SMALL_GOOGLE, "num_hidden_groups": 1}))
    with pytest.raises(ConversionError, match="num_hidden_groups=1, the checkpoint's variable names say 2"):
        convert(google, out, config=stated)

    unshared = tmp_path / "unshared"
    config = _small_brightmart_config(num_hidden_layers=3)
    write_tf_checkpoint(unshared / "albert_model.ckpt", _brightmart_tensors(config, "none"))
    _write_release_files(unshared, {**config, "num_hidden_layers": 4})
    with pytest.raises(ConversionError, match="num_hidden_layers=4, the checkpoint stores 3 layers"):
        convert(unshared, out)

    (folder / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(ConversionError, match="vocab.txt has 2 tokens"):
        convert(folder, out)
    assert no_partial_outputs(tmp_path, out)


def test_config_must_be_found_and_out_must_be_new(tmp_path):
    folder = _brightmart_folder(tmp_path)
    (folder / "albert_config.json").unlink()
    with pytest.raises(ConversionError, match="no albert_config.*--config"):
        convert(folder, tmp_path / "out")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="not an empty folder"):
        convert(folder, out, config=tmp_path / "missing.json")
    assert (out / "keep.txt").read_text() == "mine"


def test_to_hf_refuses_brightmart_layout(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="--to hf"):
        convert(_brightmart_folder(tmp_path), out, to="hf")
    assert no_partial_outputs(tmp_path, out)
