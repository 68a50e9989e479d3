"""The tokenizer against transformers' BertTokenizer and its pure-Python legacy twin."""

import random
from pathlib import Path

import pytest
import torch

from albert_zh.tokenizer import load_tokenizer

transformers = pytest.importorskip("transformers")
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy  # noqa: E402

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "clue_small_docs.txt"

SENTENCES = ["我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝", "今天北京的天气怎么样？", "这部手机的价格是3999元。",
             "他在2019年去了上海，参加了ACL会议。", "《三体》是刘慈欣写的科幻小说", "请问怎么申请信用卡"]
WORDS = ["Hello", "WORLD", "iPhone", "BERT", "albert_zh", "Café", "naïve", "Über", "straße", "résumé", "e-mail",
         "COVID-19", "3.14159", "1,000,000", "http://example.com/a?b=1", "x" * 120, "ＡＢＣ", "１２３", "，。！？",
         "😀", "👍🏻", "\x00", "\x07", "\u200b", "\t", "\r\n", "\ufeff", "  ", "ﬁ", "Ⅻ", "㈱", "ｶﾀｶﾅ", "한국어", "العربية"]


def mixed_lines(n=2400, seed=0):
    rng = random.Random(seed)
    lines = ["", " ", "\t\n"]
    while len(lines) < n:
        parts = [rng.choice(SENTENCES if rng.random() < 0.5 else WORDS) for _ in range(rng.randint(1, 6))]
        lines.append(rng.choice(["", " "]).join(parts))
    return lines


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(None)


@pytest.fixture(scope="module")
def references(tok):
    vocab = str(tok.vocab_file)
    return transformers.BertTokenizer(vocab, do_lower_case=True), BertTokenizerLegacy(vocab, do_lower_case=True)


def assert_same_ids(tok, references, lines):
    ours = tok.encode_plain(lines)
    for ref in references:
        theirs = [ref.encode(line, add_special_tokens=False) for line in lines]
        mismatches = [(line, a, b) for line, a, b in zip(lines, ours, theirs) if a != b]
        assert not mismatches, f"{type(ref).__name__}: {len(mismatches)} lines differ, first {mismatches[0]}"


def test_ids_equal_transformers_on_mixed_text(tok, references):
    lines = mixed_lines()
    assert len(lines) >= 2000
    assert_same_ids(tok, references, lines)


@pytest.mark.skipif(not SHARED_CORPUS.is_file(), reason="../shared/data corpus not present (only on dev machines and CI)")
def test_ids_equal_transformers_on_real_corpus(tok, references):
    lines = SHARED_CORPUS.read_text(encoding="utf-8").splitlines()[:3000]
    assert_same_ids(tok, references, lines)


@pytest.mark.parametrize("max_length", [5, 8, 16, 128])
def test_pairs_truncate_longest_first_like_transformers(tok, references, max_length):
    hf = references[0]
    rng = random.Random(max_length)
    for _ in range(200):
        a = rng.choice(SENTENCES) * rng.randint(1, 4)
        b = rng.choice(SENTENCES) * rng.randint(1, 8)
        ours = tok(a, b, max_length=max_length)
        theirs = hf(a, b, max_length=max_length, truncation="longest_first")
        assert ours == {k: theirs[k] for k in ours}, (a, b)


def test_batches_pad_like_transformers(tok, references):
    hf = references[0]
    pairs = [(SENTENCES[i], SENTENCES[-i - 1]) for i in range(len(SENTENCES))]
    ours = tok(pairs, max_length=24, return_tensors="pt")
    theirs = hf([a for a, _ in pairs], [b for _, b in pairs], max_length=24, truncation="longest_first",
                padding=True, return_tensors="pt")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(ours[key], theirs[key]), key
    singles = tok(SENTENCES, max_length=10, return_tensors="pt")
    theirs = hf(SENTENCES, max_length=10, truncation=True, padding=True, return_tensors="pt")
    assert torch.equal(singles["input_ids"], theirs["input_ids"])


def test_decode_and_special_ids(tok):
    enc = tok("我喜欢 Hello 妈妈", max_length=32)
    assert tok.decode(enc["input_ids"]) == "[CLS]我喜欢hello妈妈[SEP]"
    assert (tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id) == (101, 102, 0, 103)
    assert tok.vocab_size == 21128 and len(tok.vocab_hash) == 64


def test_load_from_model_directory(tok, tmp_path):
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).vocab_hash == tok.vocab_hash


def test_bad_vocabularies_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        load_tokenizer(tmp_path / "missing.txt")
    (tmp_path / "dup.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n的\n的\n")
    with pytest.raises(ValueError, match=r"dup.txt:7: duplicate token '的' \(first on line 6\)"):
        load_tokenizer(tmp_path / "dup.txt")
    (tmp_path / "nospecial.txt").write_text("[PAD]\n[UNK]\n的\n")
    with pytest.raises(ValueError, match="lacks the special tokens \\[CLS\\], \\[SEP\\], \\[MASK\\]"):
        load_tokenizer(tmp_path / "nospecial.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_tokenizer(tmp_path / "empty.txt")


def test_max_length_too_small_for_special_tokens(tok):
    with pytest.raises(ValueError, match="max_length 2 leaves no room for the 3 special tokens"):
        tok("a", "b", max_length=2)
