"""Classifier / SentenceSimilarity: batching by length changes nothing, backends agree, labels, errors."""

import json

import numpy as np
import pytest
import torch
from deploy_fixtures import PAIRS, TEXTS, save_classifier, save_encoder, save_tagger

from albert_zh.backends import load_torch_model
from albert_zh.inference import Classifier, EntityRecognizer, SentenceSimilarity, load_backend
from albert_zh.ner import spans_from_tags
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


# ---- entities -----------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[False, True], ids=["softmax", "crf"])
def tagger_dir(request, tmp_path_factory):
    return save_tagger(tmp_path_factory.mktemp("tagger") / "tagger", use_crf=request.param)


def tagged_alone(model_dir, text):
    """The reference: one text, one window, the model's own decoding, spans by the offsets."""
    model, tok = load_torch_model(model_dir), load_tokenizer(None)
    ((ids, offsets),) = tok.encode_with_offsets([text])
    batch = torch.tensor([[tok.cls_id, *ids, tok.sep_id]])
    with torch.inference_mode():
        tags = model.decode(model(batch).logits, torch.ones_like(batch))[0, 1:-1].tolist()
    return [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start:e.end]}
            for e in spans_from_tags([model.config.id2label[t] for t in tags], offsets)]


def test_entities_batched_equal_one_text_at_a_time(tagger_dir):
    found = EntityRecognizer.load(tagger_dir, batch_size=3).predict(TEXTS)
    assert found == [tagged_alone(tagger_dir, t) for t in TEXTS]
    assert sum(map(len, found)) >= 4  # the fixture tags entities to compare
    assert all(text[e["start"]:e["end"]] == e["text"] for text, entities in zip(TEXTS, found) for e in entities)


def test_entity_backends_agree(tagger_dir):
    found = {b: EntityRecognizer.load(tagger_dir, backend=b).predict(TEXTS) for b in ("torch", "onnx", "onnx-int8")}
    assert found["onnx"] == found["torch"]
    spans = [{(e["start"], e["end"], e["type"]) for e in entities} for entities in found["torch"]]
    int8 = [{(e["start"], e["end"], e["type"]) for e in entities} for entities in found["onnx-int8"]]
    same = sum(len(a & b) for a, b in zip(spans, int8)) / max(1, sum(len(a | b) for a, b in zip(spans, int8)))
    assert same > 0.5, same  # int8 moves scores a little; most spans stay


def test_long_text_windows_cover_it_all(tagger_dir):
    recognizer = EntityRecognizer.load(tagger_dir, max_seq_length=12)
    long = "".join(TEXTS[:2]) * 3
    entities = recognizer.predict([long])[0]
    assert entities and max(e["end"] for e in entities) > len(long) - 15  # found in the last windows too
    assert all(long[e["start"]:e["end"]] == e["text"] for e in entities)
    assert recognizer.predict([]) == [] and recognizer.predict(["   "]) == [[]]


def test_each_model_kind_loads_in_its_own_class(tagger_dir, classifier_dir):
    with pytest.raises(ValueError, match="EntityRecognizer"):
        Classifier.load(tagger_dir)
    with pytest.raises(ValueError, match="not an entity tagger"):
        EntityRecognizer.load(classifier_dir)
