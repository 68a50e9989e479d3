"""The model against independent references: closed-form parameter counts, the seed's figures,
and HuggingFace transformers' ALBERT on the same random weights."""

import json

import pytest
import torch

from albert_zh.checkpoint import CheckpointError
from albert_zh.model import (
    PRESETS,
    AlbertConfig,
    AlbertForPreTraining,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
    closed_form_parameter_count,
    gelu_tanh,
)

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=21128, embedding_size=16, hidden_size=32, num_attention_heads=4,
             intermediate_size=37, max_position_embeddings=64)


def small_config(**kw) -> AlbertConfig:
    return AlbertConfig(**{**SMALL, "num_hidden_layers": 3, **kw})


def inputs(batch=3, seq=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 21128, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq - 4:] = 0  # the last row is padded
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, seq // 2:] = 1
    return ids, mask, types


def test_gelu_tanh_takes_the_same_values_when_compiled(monkeypatch):
    x = torch.linspace(-12, 12, 2001, dtype=torch.float64)
    eager = gelu_tanh(x)
    torch.testing.assert_close(eager, torch.nn.functional.gelu(x, approximate="tanh"), rtol=0, atol=0)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # the sigmoid form inductor gets
    torch.testing.assert_close(gelu_tanh(x), eager, rtol=1e-12, atol=1e-12)


# ---- parameter counts -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_counts_equal_closed_form(name):
    config = AlbertConfig.preset(name)
    with torch.device("meta"):  # shapes only: the xxlarge preset would need gigabytes otherwise
        model = AlbertForPreTraining(config)
    expected = closed_form_parameter_count(config)
    assert model.num_parameters() == expected["pretraining"]
    assert model.albert.num_parameters() == expected["model"]


@pytest.mark.parametrize("layout", ["google", "brightmart"])
def test_all_sharing_keeps_parameters_constant_as_layers_grow(layout):
    counts = {AlbertModel(small_config(num_hidden_layers=n, embedding_layout=layout)).num_parameters()
              for n in (1, 2, 6, 12)}
    assert len(counts) == 1
    unshared = [AlbertModel(small_config(num_hidden_layers=n, sharing="none")).num_parameters() for n in (1, 2, 6)]
    assert unshared[0] < unshared[1] < unshared[2]


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
def test_sharing_modes_match_closed_form(sharing):
    config = small_config(num_hidden_layers=5, sharing=sharing)
    assert AlbertModel(config).num_parameters() == closed_form_parameter_count(config)["model"]


def test_seed_transformer_figures():
    """brightmart's test_changes.py: a 12-layer H=1024 transformer has 125,976,576 parameters
    unshared and 10,498,048 shared across layers."""
    for sharing, expected in (("none", 125_976_576), ("all", 10_498_048)):
        config = AlbertConfig(hidden_size=1024, num_attention_heads=16, intermediate_size=3072,
                              num_hidden_layers=12, sharing=sharing)
        with torch.device("meta"):
            layers = AlbertModel(config).encoder.albert_layer_groups
        assert sum(p.numel() for p in layers.parameters()) == expected


def test_google_groups_store_groups_times_inner_layers():
    config = small_config(num_hidden_layers=6, num_hidden_groups=2, inner_group_num=2)
    model = AlbertModel(config)
    assert len(model.encoder.albert_layer_groups) == 2
    assert model.num_parameters() == closed_form_parameter_count(config)["model"]


def test_partially_shared_parameters_are_the_same_tensor():
    model = AlbertModel(small_config(sharing="attention"))
    groups = model.encoder.albert_layer_groups
    assert groups[0].albert_layers[0].attention.query.weight is groups[2].albert_layers[0].attention.query.weight
    assert groups[0].albert_layers[0].ffn.weight is not groups[2].albert_layers[0].ffn.weight


# ---- parity with transformers -----------------------------------------------------------

def hf_config(config: AlbertConfig):
    fields = {k: v for k, v in config.to_dict().items() if k not in ("sharing", "embedding_layout", "ln_type")}
    return transformers.AlbertConfig(**fields)


@pytest.mark.parametrize("groups", [(1, 1), (3, 1), (1, 2)])
def test_hf_checkpoint_round_trip_gives_identical_outputs(tmp_path, groups):
    """random HF AlbertForPreTraining -> our model -> save_pretrained -> transformers."""
    num_groups, inner = groups
    config = small_config(num_hidden_groups=num_groups, inner_group_num=inner, hidden_act="gelu_new")
    torch.manual_seed(0)
    hf = transformers.AlbertForPreTraining(hf_config(config)).eval()
    with torch.no_grad():  # HF initialises LayerNorm to (1, 0); move them so a swap would show
        for name, p in hf.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path / "hf")
    ours = AlbertForPreTraining.from_pretrained(tmp_path / "hf").eval()
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.AlbertForPreTraining.from_pretrained(tmp_path / "ours").eval()

    ids, mask, types = inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        ref_pooled = hf.albert(input_ids=ids, attention_mask=mask, token_type_ids=types).pooler_output
        out = ours(ids, mask, types)
        seq, pooled = ours.albert(ids, mask, types)
        again = back(input_ids=ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    torch.testing.assert_close(seq[real], ref.hidden_states[-1][real], atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled, ref_pooled, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.mlm_logits, ref.prediction_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.sop_logits, ref.sop_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(again.prediction_logits, ref.prediction_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(again.sop_logits, ref.sop_logits, atol=1e-5, rtol=0)


def test_losses_match_hf_and_masked_positions_agree_with_labels(tmp_path):
    config = small_config()
    torch.manual_seed(1)
    hf = transformers.AlbertForPreTraining(hf_config(config)).eval()
    hf.save_pretrained(tmp_path)
    ours = AlbertForPreTraining.from_pretrained(tmp_path).eval()
    ids, mask, types = inputs(seq=10)
    labels = torch.full_like(ids, -100)
    positions = torch.tensor([[1, 4], [2, 3], [5, 8]])
    labels.scatter_(1, positions, ids.gather(1, positions))
    sop = torch.tensor([0, 1, 1])
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels, sentence_order_label=sop)
        by_labels = ours(ids, mask, types, labels=labels, sentence_order_label=sop)
        by_positions = ours(ids, mask, types, labels=ids.gather(1, positions), sentence_order_label=sop,
                            masked_positions=positions)
    torch.testing.assert_close(by_labels.loss, ref.loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(by_positions.loss, ref.loss, atol=1e-5, rtol=0)
    assert by_labels.mlm_logits.shape == (6, 21128)  # only the masked positions
    assert by_positions.mlm_logits.shape == (3, 2, 21128)
    torch.testing.assert_close(by_positions.mlm_logits.reshape(6, -1), by_labels.mlm_logits)
    # scoring some ids only gives those columns of the scores (the labels then index into them)
    scored = torch.tensor([7, 100, 5000, 21127])
    with torch.no_grad():
        some = ours(ids, mask, types, masked_positions=positions, vocab_ids=scored)
    torch.testing.assert_close(some.mlm_logits, by_positions.mlm_logits[..., scored])


def hf_and_ours(hf_class, our_class, config: AlbertConfig, seed: int, path):
    """A random transformers model and ours loaded from its save_pretrained directory."""
    torch.manual_seed(seed)
    hf = hf_class(hf_config(config)).eval()
    hf.save_pretrained(path)
    return hf, our_class.from_pretrained(path).eval()


def test_classifier_matches_hf_and_loads_from_pretraining_checkpoint(tmp_path):
    config = small_config(num_labels=3)
    hf, ours = hf_and_ours(transformers.AlbertForSequenceClassification, AlbertForSequenceClassification, config, 2,
                           tmp_path / "cls")
    ids, mask, types = inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask, types).logits,
                                   hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
                                   atol=1e-5, rtol=0)
    # a pretraining checkpoint starts a classifier: the heads are dropped, the classifier is new
    AlbertForPreTraining(config).save_pretrained(tmp_path / "pre")
    model = AlbertForSequenceClassification.from_pretrained(tmp_path / "pre", num_labels=5)
    assert model.classifier.out_features == 5
    encoder = AlbertModel.from_pretrained(tmp_path / "pre")
    assert encoder.num_parameters() == closed_form_parameter_count(config)["model"]


def test_token_classifier_matches_hf_both_ways(tmp_path):
    config = small_config(num_labels=7)
    hf, ours = hf_and_ours(transformers.AlbertForTokenClassification, AlbertForTokenClassification, config, 3,
                           tmp_path / "hf")
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.AlbertForTokenClassification.from_pretrained(tmp_path / "ours").eval()
    ids, mask, types = inputs()
    labels = torch.randint(0, 7, ids.shape, generator=torch.Generator().manual_seed(4))
    labels[:, 0] = -100
    labels[mask == 0] = -100
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
        out = ours(ids, mask, types, labels=labels)
        again = back(input_ids=ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    assert out.logits.shape == (3, 12, 7)
    torch.testing.assert_close(out.logits[real], ref.logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(again.logits[real], ref.logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("padding", ["right", "left"])
def test_training_skips_padding_with_the_same_loss_and_gradients_as_hf(tmp_path, padding):
    """In training our encoder computes the real tokens only (`Unpadded`); transformers computes all."""
    config = small_config(num_labels=7, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          classifier_dropout_prob=0.0)
    hf, ours = hf_and_ours(transformers.AlbertForTokenClassification, AlbertForTokenClassification, config, 6,
                           tmp_path)
    hf.train(), ours.train()
    ids, mask, types = inputs(batch=4, seq=12)
    mask[1, 5:] = 0
    if padding == "left":
        mask = mask.flip(1)
    labels = torch.randint(0, 7, ids.shape, generator=torch.Generator().manual_seed(7)).masked_fill(mask == 0, -100)
    ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    out = ours(ids, mask, types, labels=labels)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=0)
    real = mask.bool()
    torch.testing.assert_close(out.logits[real], ref.logits[real], atol=1e-5, rtol=0)
    ref.loss.backward(), out.loss.backward()
    theirs = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():  # the padded positions were never computed
        assert ours.albert(ids, mask, types).sequence_output[~real].abs().max() == 0
        assert ours.eval().albert(ids, mask, types).sequence_output[~real].abs().max() > 0


def test_token_classifier_with_crf_starts_from_a_pretraining_checkpoint(tmp_path):
    config = small_config()
    AlbertForPreTraining(config).save_pretrained(tmp_path / "pre")
    model = AlbertForTokenClassification.from_pretrained(tmp_path / "pre", num_labels=5, use_crf=True).eval()
    assert model.crf.transitions.shape == (5, 5)
    ids, mask, types = inputs()
    labels = torch.randint(0, 5, ids.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = model(ids, mask, types, labels=labels)
        tags = model.decode(out.logits, mask)
    assert out.loss > 0  # minus a log-probability
    assert tags.shape == ids.shape
    # no transition scores yet: the CRF's best path is the argmax of the scores over the pieces
    assert torch.equal(tags[0, 1:-1], out.logits[0, 1:-1].argmax(-1))
    model.save_pretrained(tmp_path / "crf")
    again = AlbertForTokenClassification.from_pretrained(tmp_path / "crf").eval()
    assert again.config.use_crf
    torch.testing.assert_close(again(ids, mask, types).logits, out.logits)


@pytest.mark.parametrize("layout,ln", [("brightmart", "postln"), ("brightmart", "preln"), ("google", "preln")])
def test_other_layouts_round_trip_through_our_directory(tmp_path, layout, ln):
    config = small_config(embedding_layout=layout, ln_type=ln, sharing="ffn")
    model = AlbertForPreTraining(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AlbertForPreTraining.from_pretrained(tmp_path).eval()
    ids, mask, types = inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask, types).mlm_logits, model(ids, mask, types).mlm_logits,
                                   atol=0, rtol=0)


def test_padding_does_not_change_real_positions():
    model = AlbertModel(small_config()).eval()
    ids, _, types = inputs(batch=1, seq=8)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 4)], 1).long()
    with torch.no_grad():
        short = model(ids, None, types).sequence_output
        long = model(padded, mask, torch.cat([types, torch.zeros(1, 4, dtype=torch.long)], 1)).sequence_output
    torch.testing.assert_close(long[:, :8], short, atol=1e-5, rtol=0)


def test_config_reads_released_json_formats(tmp_path):
    brightmart = AlbertConfig.preset("tiny")
    assert (brightmart.embedding_layout, brightmart.ln_type, brightmart.hidden_act) == ("brightmart", "postln", "gelu_new")
    assert AlbertConfig.preset("xxlarge").ln_type == "preln"
    assert AlbertConfig.preset("small").embedding_layout == "google"
    (tmp_path / "hf.json").write_text(json.dumps({**hf_config(small_config(hidden_act="gelu")).to_dict()}))
    assert AlbertConfig.from_json(tmp_path / "hf.json").hidden_act == "gelu"  # HF's "gelu" is exact


# ---- bad input --------------------------------------------------------------------------

def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'tinny'.*tiny, tiny_preln, small"):
        AlbertConfig.preset("tinny")


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"hidden_size \(100\) must be divisible by num_attention_heads \(12\)"):
        AlbertConfig(hidden_size=100, num_attention_heads=12)


def test_checkpoint_with_missing_and_unexpected_keys_lists_them(tmp_path):
    AlbertModel(small_config()).save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file
    weights = load_file(tmp_path / "model.safetensors")
    weights["encoder.surprise.weight"] = torch.zeros(1)
    del weights["pooler.bias"]
    del weights["embeddings.LayerNorm.weight"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        AlbertModel.from_pretrained(tmp_path)
    message = str(e.value)
    assert "missing keys (2): albert.embeddings.LayerNorm.weight, albert.pooler.bias" in message
    assert "unexpected keys (1): albert.encoder.surprise.weight" in message


def test_checkpoint_of_another_shape_names_both_shapes(tmp_path):
    AlbertModel(small_config()).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"albert.pooler.weight: checkpoint \(32, 32\), model \(64, 64\)"):
        AlbertModel.from_pretrained(tmp_path, hidden_size=64)


def test_vocabulary_size_must_match_config(tmp_path):
    AlbertModel(small_config()).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n")
    with pytest.raises(ValueError, match="has 3 tokens but the config says vocab_size=21128"):
        AlbertModel.from_pretrained(tmp_path)


def test_missing_directory_and_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        AlbertModel.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        AlbertModel.from_pretrained(tmp_path)


def test_token_ids_out_of_range():
    model = AlbertModel(small_config())
    with pytest.raises(ValueError, match="token id 21128 out of range for vocab_size 21128"):
        model(torch.tensor([[101, 21128, 102]]))


def test_sequence_longer_than_positions():
    model = AlbertModel(small_config())
    with pytest.raises(ValueError, match="sequence length 65 exceeds max_position_embeddings \\(64\\)"):
        model(torch.ones(1, 65, dtype=torch.long))
