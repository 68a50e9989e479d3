"""Segmentation into word starts, n-gram span choice and 80/10/10 replacement."""

from pathlib import Path

import jieba
import numpy as np
import pytest

from albert_zh.masking import JiebaSegmenter, MaskingOptions, WholeWordEncoder, mask_batch, ngram_probabilities
from albert_zh.tokenizer import load_tokenizer

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "clue_small_docs.txt"

SENTENCES = [
    "我喜欢自然语言处理和机器学习。",
    "今天北京的天气很好，我们去颐和园散步吧！",
    "水温50~55℃，泡双脚，水稍凉马上续热水。",
    "其一是由Mobage、mixi、dゲーム、GREE联运的卡牌游戏。",
    "iPhone 15 Pro 的价格是 7999 元， 比去年贵了3.5%。",
    "他说：“这本书真的非常有意思。”",
    "   ",
    "ALBERT 是一个轻量级的 BERT 模型",
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


@pytest.fixture(scope="module")
def segmenter():
    return JiebaSegmenter()


def test_segmenter_equals_jieba_without_hmm(segmenter):
    for sentence in SENTENCES:
        assert segmenter.cut(sentence) == jieba.lcut(sentence, HMM=False)


def test_segmenter_equals_jieba_on_the_shared_corpus(segmenter):
    if not SHARED_CORPUS.exists():
        pytest.skip(f"{SHARED_CORPUS} is not on this machine (CI and the team's machines have it)")
    lines = [line.strip() for line in SHARED_CORPUS.read_text(encoding="utf-8").splitlines()[:3000] if line.strip()]
    assert [segmenter.cut(s) for s in lines] == [jieba.lcut(s, HMM=False) for s in lines]


def test_hmm_mode_is_jieba_itself():
    sentence = "小明硕士毕业于中国科学院计算所，后在日本京都大学深造"
    assert JiebaSegmenter(hmm=True).cut(sentence) == jieba.lcut(sentence, HMM=True)


def test_user_dictionary_adds_words_without_touching_global_jieba(tmp_path):
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("轻量模型动物园 10000 n\n", encoding="utf-8")
    sentence = "轻量模型动物园开张了"
    assert "轻量模型动物园" in JiebaSegmenter(user_dict).cut(sentence)
    assert "轻量模型动物园" not in jieba.lcut(sentence, HMM=False)
    with pytest.raises(FileNotFoundError, match="user dictionary"):
        JiebaSegmenter(tmp_path / "missing.txt")


def test_encoder_ids_equal_whole_sentence_tokenization(tokenizer, segmenter):
    ids, starts, offsets = WholeWordEncoder(tokenizer, segmenter).encode(SENTENCES)
    assert offsets[0] == 0 and offsets[-1] == len(ids) == len(starts)
    for k, sentence in enumerate(SENTENCES):
        assert ids[offsets[k]:offsets[k + 1]].tolist() == tokenizer.encode_plain([sentence])[0], sentence


def test_word_starts_mark_the_first_piece_of_each_jieba_word(tokenizer, segmenter):
    sentence = "我喜欢自然语言处理"
    ids, starts, _ = WholeWordEncoder(tokenizer, segmenter).encode([sentence])
    expected = [k == 0 for word in jieba.lcut(sentence, HMM=False) for k in range(len(word))]
    assert starts.tolist() == expected
    # a number glued to a symbol is one BERT word: one start for "55" + "##℃"
    ids, starts, _ = WholeWordEncoder(tokenizer, segmenter).encode(["55℃"])
    assert tokenizer.convert_ids_to_tokens(ids) == ["55", "##℃"] and starts.tolist() == [True, False]


def test_without_whole_words_every_token_starts_a_word(tokenizer):
    ids, starts, offsets = WholeWordEncoder(tokenizer, None).encode(SENTENCES)
    assert starts.all() and len(ids) == offsets[-1]


def test_ngram_probabilities_are_one_over_n():
    np.testing.assert_allclose(ngram_probabilities(3), np.array([6, 3, 2]) / 11)


def _random_batch(rng, rows=400, width=128):
    """Instances shaped like the real ones: [CLS] A [SEP] B [SEP], mostly near full length, over
    words of 1-3 tokens (jieba words average 1.6 characters). Much shorter instances or longer
    words leave room for fewer spans, and the 1/n law then bends toward short spans."""
    tokens = rng.integers(1000, 20000, (rows, width))
    starts = np.zeros((rows, width), dtype=bool)
    maskable = np.zeros((rows, width), dtype=bool)
    for r in range(rows):
        length = int(rng.integers(100, width + 1))
        a_length = int(rng.integers(3, length - 2))
        maskable[r, 1:a_length - 1] = True
        maskable[r, a_length:length - 1] = True
        position = 1
        while position < length:
            starts[r, position] = True
            position += int(rng.choice([1, 1, 2, 2, 3]))
        starts[r, a_length] = True
        tokens[r, [0]] = 101
        tokens[r, [a_length - 1, length - 1]] = 102
        tokens[r, length:] = 0
    return tokens, starts, maskable


def _words(starts_row, maskable_row):
    """(begin, end) of each maskable word of one row."""
    edges = starts_row | ~maskable_row
    bounds = list(np.flatnonzero(edges)) + [len(edges)]
    return [(b, e) for b, e in zip(bounds, bounds[1:]) if maskable_row[b]]


def test_mask_batch_rules():
    rng = np.random.default_rng(0)
    tokens, starts, maskable = _random_batch(rng)
    options = MaskingOptions()
    masked = mask_batch(tokens, starts, maskable, options, np.random.default_rng(1))
    budgets = np.clip(np.floor(maskable.sum(1) * 0.15 + 0.5), 1, 20)
    assert (masked.counts <= budgets).all() and (masked.counts >= 1).all()
    for r in range(len(tokens)):
        k = masked.counts[r]
        positions = masked.positions[r, :k]
        assert (np.diff(positions) > 0).all() and maskable[r, positions].all()
        assert (masked.labels[r, :k] == tokens[r, positions]).all()
        assert (masked.positions[r, k:] == 0).all() and (masked.labels[r, k:] == 0).all()
        chosen = set(positions.tolist())
        for begin, end in _words(starts[r], maskable[r]):  # whole words only
            inside = [p in chosen for p in range(begin, end)]
            assert all(inside) or not any(inside)
        unchanged = np.ones(tokens.shape[1], dtype=bool)
        unchanged[positions] = False
        assert (masked.input_ids[r, unchanged] == tokens[r, unchanged]).all()
    # the same generator state gives the same masks
    again = mask_batch(tokens, starts, maskable, options, np.random.default_rng(1))
    assert (again.input_ids == masked.input_ids).all() and again.span_lengths == masked.span_lengths


def test_mask_batch_statistics():
    rng = np.random.default_rng(2)
    tokens, starts, maskable = _random_batch(rng, rows=2000)
    options = MaskingOptions()
    masked = mask_batch(tokens, starts, maskable, options, np.random.default_rng(3))
    assert abs(masked.counts.sum() / maskable.sum() - 0.15) < 0.01
    spans = np.bincount(masked.span_lengths, minlength=4)[1:] / len(masked.span_lengths)
    assert np.abs(spans - ngram_probabilities(3)).max() < 0.03, spans
    single = mask_batch(tokens, starts, maskable, MaskingOptions(ngram=1), np.random.default_rng(3))
    assert set(single.span_lengths) == {1} and abs(single.counts.sum() / maskable.sum() - 0.15) < 0.01
    rows = np.broadcast_to(np.arange(len(tokens))[:, None], masked.positions.shape)
    slots = np.arange(20) < masked.counts[:, None]
    new, old = masked.input_ids[rows[slots], masked.positions[slots]], masked.labels[slots]
    as_mask, unchanged = (new == options.mask_id).mean(), (new == old).mean()
    assert abs(as_mask - 0.8) < 0.02 and abs(unchanged - 0.1) < 0.02
    assert not np.isin(new[new != options.mask_id], options.special_ids).any()


def test_short_instances_still_get_a_masked_token():
    tokens = np.array([[101, 2000, 2001, 102, 2002, 102]])
    starts = np.array([[True, True, False, True, True, True]])
    maskable = np.array([[False, True, True, False, True, False]])
    for seed in range(20):
        masked = mask_batch(tokens, starts, maskable, MaskingOptions(), np.random.default_rng(seed))
        assert masked.counts[0] == 1 and masked.positions[0, 0] == 4  # the only word that fits a budget of 1
