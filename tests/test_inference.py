"""Classifier / SentenceSimilarity: batching by length changes nothing, backends agree, labels, errors."""

import json

import numpy as np
import pytest
import torch
from deploy_fixtures import PAIRS, save_classifier, save_encoder

from albert_zh.backends import load_torch_model
from albert_zh.inference import Classifier, SentenceSimilarity, load_backend
from albert_zh.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("inference") / "classifier")


def one_at_a_time(model_dir, pairs):
    """The reference: each pair tokenized and run alone, no padding, no reordering."""
    model, tok = load_torch_model(model_dir), load_tokenizer(None)
    with torch.inference_mode():
        return np.concatenate([model(**{k: v for k, v in tok(a, b, return_tensors="pt").items()}).logits.softmax(-1).numpy()
                               for a, b in pairs])


def test_batched_predictions_equal_one_at_a_time(classifier_dir):
    sim = SentenceSimilarity.load(classifier_dir, batch_size=3)
    expected = one_at_a_time(classifier_dir, PAIRS)
    np.testing.assert_allclose(sim.predict(PAIRS), expected[:, 1], atol=1e-5)
    np.testing.assert_allclose(sim.predict_proba(PAIRS), expected, atol=1e-5)
    assert len({round(p, 3) for p in sim.predict(PAIRS)}) > 1  # the fixture's scores differ between pairs


def test_backends_agree(classifier_dir):
    scores = {b: SentenceSimilarity.load(classifier_dir, backend=b).predict(PAIRS) for b in ("torch", "onnx", "onnx-int8")}
    assert (classifier_dir / "model.onnx").is_file() and (classifier_dir / "model.int8.onnx").is_file()
    np.testing.assert_allclose(scores["onnx"], scores["torch"], atol=1e-4)
    np.testing.assert_allclose(scores["onnx-int8"], scores["torch"], atol=0.1)


def test_single_texts_labels_and_embeddings(tmp_path):
    model_dir = save_classifier(tmp_path / "sentiment", num_labels=3)
    config = json.loads((model_dir / "config.json").read_text())
    config["id2label"] = {"0": "负面", "1": "中性", "2": "正面"}
    (model_dir / "config.json").write_text(json.dumps(config, ensure_ascii=False))
    classifier = Classifier.load(model_dir)
    results = classifier.predict(["这家酒店很干净", "服务太差了"])
    assert [set(r["probabilities"]) for r in results] == [{"负面", "中性", "正面"}] * 2
    assert all(r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in results)
    assert abs(sum(results[0]["probabilities"].values()) - 1) < 1e-6
    vectors = classifier.embed(["你好", "今天天气很好", "你好"])
    assert vectors.shape == (3, 128) and np.allclose(vectors[0], vectors[2], atol=1e-6)
    with pytest.raises(ValueError, match="not a similarity model"):
        SentenceSimilarity.load(model_dir).predict(PAIRS)


def test_encoder_only_model_embeds_but_does_not_classify(tmp_path):
    model_dir = save_encoder(tmp_path / "encoder")
    classifier = Classifier.load(model_dir, backend="onnx")
    reference = load_backend(model_dir, "torch")
    tok = load_tokenizer(None)(["今天天气很好"])
    arrays = [np.array(tok[k]) for k in ("input_ids", "attention_mask", "token_type_ids")]
    np.testing.assert_allclose(classifier.embed(["今天天气很好"]), reference(*arrays)["pooled_output"], atol=1e-4)
    with pytest.raises(ValueError, match="no classifier head"):
        classifier.predict(["今天天气很好"])


def test_bad_arguments(classifier_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        Classifier.load(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown backend"):
        Classifier.load(classifier_dir, backend="tensorrt")
    with pytest.raises(ValueError, match="max_seq_length"):
        Classifier.load(classifier_dir, max_seq_length=100_000)
    with pytest.raises(ValueError, match="pairs"):
        SentenceSimilarity.load(classifier_dir).predict(["not a pair"])
