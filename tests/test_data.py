"""The memory-mapped pretraining dataset, dynamic masking per epoch, and the batches the model eats."""

import pickle

import numpy as np
import pytest
import torch

from albert_zh.data import PretrainingDataset, collate_pretraining, read_manifest
from albert_zh.prepare import PrepareConfig, prepare_data

SENTENCES = ["今天北京的天气非常好，我们一起去公园散步。", "公园里的花都开了，孩子们在草地上奔跑。",
             "中午我们在湖边的小饭馆吃了一顿饭。", "下午下了一场小雨，空气变得更加清新。",
             "自然语言处理是人工智能的一个重要方向。", "预训练模型让很多任务的效果都提高了。",
             "轻量级的模型更适合在手机上运行。", "研究人员发布了新的中文数据集和评测方法。"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    docs = ["\n".join(rng.permutation(SENTENCES)[:int(rng.integers(3, 8))]) for _ in range(60)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    for masking in ("static", "dynamic"):
        prepare_data(PrepareConfig(inputs=(str(root / "corpus.txt"),), out=str(root / masking), max_seq_length=64,
                                   max_predictions=10, masking=masking, workers=1))
    return root


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_batches_have_the_model_inputs(prepared, masking):
    dataset = PretrainingDataset(prepared / masking)
    assert len(dataset) == read_manifest(prepared / masking)["instances"] > 20
    batch = dataset.collate([dataset[i] for i in range(8)])
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "masked_positions", "masked_labels",
                          "sentence_order_label"}
    assert all(t.dtype == torch.long for t in batch.values())
    batch_size, width = batch["input_ids"].shape
    assert batch_size == 8 and width <= 64 and batch["masked_positions"].shape == batch["masked_labels"].shape == (8, 10)
    for b in range(8):
        length = int(batch["attention_mask"][b].sum())
        ids, types = batch["input_ids"][b], batch["token_type_ids"][b]
        assert (batch["attention_mask"][b, :length] == 1).all() and (ids[length:] == 0).all()
        assert ids[0] == 101 and ids[length - 1] == 102
        a_length = int((types[:length] == 0).sum())
        assert ids[a_length - 1] == 102 and (types[a_length:length] == 1).all() and (types[length:] == 0).all()
        labels, positions = batch["masked_labels"][b], batch["masked_positions"][b]
        real = labels != -100
        count = int(real.sum())
        assert count >= 1 and real[:count].all() and (positions[count:] == 0).all()
        assert ((positions[:count] > 0) & (positions[:count] < length - 1) & (positions[:count] != a_length - 1)).all()
    assert set(batch["sentence_order_label"].tolist()) <= {0, 1}


def test_dynamic_masking_is_reproducible_and_new_each_epoch(prepared):
    dataset = PretrainingDataset(prepared / "dynamic")
    first = [dataset[i]["masked_positions"] for i in range(20)]
    again = [PretrainingDataset(prepared / "dynamic")[i]["masked_positions"] for i in range(20)]
    assert all((a == b).all() for a, b in zip(first, again))
    dataset.set_epoch(1)
    second = [dataset[i]["masked_positions"] for i in range(20)]
    assert sum(a.shape != b.shape or (a != b).any() for a, b in zip(first, second)) >= 15
    # different masks over the same tokens
    restored = []
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        item = dataset[0]
        ids = item["input_ids"].copy()
        ids[item["masked_positions"]] = item["masked_labels"]
        restored.append(ids)
    assert (restored[0] == restored[1]).all()


def test_another_masking_rate_for_dynamic_masks(prepared):
    """The rate is the masked share of the maskable tokens (not [CLS] or the two [SEP])."""
    def masked_share(dataset):
        items = [dataset[i] for i in range(len(dataset))]
        return sum(len(x["masked_positions"]) for x in items) / sum(len(x["input_ids"]) - 3 for x in items)

    usual, more = PretrainingDataset(prepared / "dynamic"), PretrainingDataset(prepared / "dynamic", masked_lm_prob=0.3)
    assert 0.13 < masked_share(usual) < 0.17 and 0.27 < masked_share(more) < 0.33
    assert more.options.max_predictions == round(64 * 0.3) > usual.options.max_predictions == 10
    assert more.collate([more[i] for i in range(4)])["masked_positions"].shape == (4, 19)
    with pytest.raises(ValueError, match="static masks"):
        PretrainingDataset(prepared / "static", masked_lm_prob=0.3)
    assert PretrainingDataset(prepared / "static", masked_lm_prob=0.15).options.max_predictions == 10


def test_another_span_length_for_dynamic_masks(prepared):
    usual, single = PretrainingDataset(prepared / "dynamic"), PretrainingDataset(prepared / "dynamic", ngram=1)
    assert usual.options.ngram == 3 and single.options.ngram == 1
    assert single.options.max_predictions == usual.options.max_predictions  # the rate is unchanged
    assert any((usual[i]["masked_positions"].shape != single[i]["masked_positions"].shape
                or (usual[i]["masked_positions"] != single[i]["masked_positions"]).any()) for i in range(len(usual)))
    with pytest.raises(ValueError, match="static masks.*spans of up to 3 words"):
        PretrainingDataset(prepared / "static", ngram=1)
    assert PretrainingDataset(prepared / "static", ngram=3).options.ngram == 3


def test_dynamic_and_static_share_the_pairs(prepared):
    static, dynamic = PretrainingDataset(prepared / "static"), PretrainingDataset(prepared / "dynamic")
    assert len(static) == len(dynamic)
    for i in range(len(static)):
        s, d = static[i], dynamic[i]
        for item in (s, d):
            item["input_ids"][item["masked_positions"]] = item["masked_labels"]
        assert (s["input_ids"] == d["input_ids"]).all() and s["a_length"] == d["a_length"]


def test_label_ids_are_every_id_a_mask_can_hold(prepared):
    from albert_zh.tokenizer import load_tokenizer

    corpus_ids = {i for ids in load_tokenizer().encode_plain(SENTENCES) for i in ids}  # the tokenizer's, not the shards'
    dynamic = PretrainingDataset(prepared / "dynamic")
    assert set(dynamic.label_ids()) == corpus_ids
    static = PretrainingDataset(prepared / "static")
    static_labels = {int(label) for i in range(len(static)) for label in static[i]["masked_labels"]}
    assert set(static.label_ids()) == static_labels and static_labels <= corpus_ids
    for epoch in range(3):  # whatever a new epoch's masks pick is among them
        dynamic.set_epoch(epoch)
        assert {int(label) for i in range(len(dynamic)) for label in dynamic[i]["masked_labels"]} <= corpus_ids


def test_data_loader_with_workers_and_pickling(prepared):
    dataset = PretrainingDataset(prepared / "dynamic")
    dataset[0]  # opens the memory maps
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._shards is None and (clone[3]["input_ids"] == dataset[3]["input_ids"]).all()
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2,
                                         collate_fn=dataset.collate, generator=torch.Generator().manual_seed(0))
    assert sum(len(batch["input_ids"]) for batch in loader) == len(dataset)


def test_the_model_trains_on_a_batch(prepared):
    from albert_zh.model import AlbertConfig, AlbertForPreTraining

    dataset = PretrainingDataset(prepared / "dynamic")
    batch = dataset.collate([dataset[i] for i in range(4)])
    config = AlbertConfig(vocab_size=21128, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    model = AlbertForPreTraining(config)
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels=batch["masked_labels"],
                sentence_order_label=batch["sentence_order_label"], masked_positions=batch["masked_positions"])
    assert torch.isfinite(out.loss)
    out.loss.backward()


def test_collate_pads_short_batches():
    items = [{"input_ids": np.array([101, 7, 102, 8, 102]), "a_length": 3, "masked_positions": np.array([1]),
              "masked_labels": np.array([9]), "sentence_order_label": 1}]
    batch = collate_pretraining(items, max_predictions=3)
    assert batch["masked_labels"].tolist() == [[9, -100, -100]] and batch["token_type_ids"].tolist() == [[0, 0, 0, 1, 1]]


def test_errors(prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a prepared data directory"):
        PretrainingDataset(tmp_path)
    (tmp_path / "progress.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="unfinished run"):
        PretrainingDataset(tmp_path)
    dataset = PretrainingDataset(prepared / "static")
    with pytest.raises(ValueError, match="another vocabulary"):
        dataset.check_vocabulary("0" * 64)
    with pytest.raises(IndexError):
        dataset[len(dataset)]
