"""prepare-data: reading, instances, shards, resume/refuse, bad input, and the issue's statistics."""

import argparse
import gzip
import json
import unicodedata
from collections import Counter
from pathlib import Path

import jieba
import numpy as np
import pytest

from albert_zh import prepare
from albert_zh.data import read_manifest
from albert_zh.masking import ngram_probabilities
from albert_zh.prepare import (
    PrepareConfig,
    add_inspect_arguments,
    add_prepare_arguments,
    expand_inputs,
    inspect_data,
    prepare_config_from_args,
    prepare_data,
    split_sentences,
)
from albert_zh.tokenizer import load_tokenizer

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "clue_small_docs.txt"

WORDS = ("我们 今天 北京 天气 非常 喜欢 学习 自然 语言 处理 模型 训练 数据 中文 研究 公司 发布 新的 产品 市场 "
         "经济 发展 城市 交通 医院 学生 老师 学校 考试 成绩 音乐 电影 朋友 周末 旅行 美食 文化 历史 科学 技术 "
         "手机 电脑 网络 游戏 记者 报道 政府 政策 工作 生活 孩子 父母 健康 运动 比赛 球队 冠军 春天 花园 "
         "的 了 和 在 是 也 很 都 就 又 把 被 去 来 说 看 想 做 吃 买 卖 开 关").split()


def write_built_corpus(path: Path, documents: int = 400, seed: int = 0,
                       endings=("。", "！", "？", "，然后")) -> list[list[str]]:
    """Documents of 2-8 sentences made of common words, in the seed's text format."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(documents):
        docs.append(["".join(rng.choice(WORDS, int(rng.integers(6, 20)))) + rng.choice(list(endings))
                     for _ in range(int(rng.integers(2, 9)))])
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return docs


def config(inputs, out, **overrides) -> PrepareConfig:
    values = dict(inputs=tuple(map(str, inputs)), out=str(out), max_seq_length=128, workers=1)
    values.update(overrides)
    return PrepareConfig(**values)


def shard_bytes(out: Path) -> list[bytes]:
    return [(out / s["file"]).read_bytes() for s in read_manifest(out)["shards"]]


def restored_instances(out: Path, tokenizer):
    """(ids with the original tokens put back, a_length, length, masked positions, sop label) per instance."""
    manifest = read_manifest(out)
    for shard in manifest["shards"]:
        for record in np.load(out / shard["file"]):
            length, a_length, count = int(record["length"]), int(record["a_length"]), int(record["num_masked"])
            ids = record["input_ids"][:length].astype(np.int64)
            positions = record["masked_positions"][:count].astype(np.int64)
            ids[positions] = record["masked_labels"][:count]
            yield ids, a_length, length, positions, int(record["sop_label"])


def segment_text(tokenizer, ids) -> str:
    return "".join(t.removeprefix("##") for t in tokenizer.convert_ids_to_tokens(ids))


def bar_one_statistics(out: Path, documents: list[str], tokenizer, sample: int = 600) -> dict:
    """The issue's bar 1 measured on prepared static shards, independently of our encoder:
    A and B are found in one document's text, and jieba (run here on each segment's text) words
    are checked for all-or-none masking."""
    haystack = "\x00".join(documents)
    starts = np.cumsum([0] + [len(d) + 1 for d in documents])
    masked = tokens = swapped = instances = 0
    same_document = checked = whole = partial = 0
    for index, (ids, a_length, length, positions, label) in enumerate(restored_instances(out, tokenizer)):
        instances += 1
        masked += len(positions)
        tokens += length - 3
        swapped += label
        if index % max(1, instances // sample + 1):
            continue
        a, b = ids[1:a_length - 1], ids[a_length:length - 1]
        if tokenizer.unk_id in ids:
            continue
        a_text, b_text = segment_text(tokenizer, a), segment_text(tokenizer, b)
        checked += 1
        found = haystack.find(a_text[:12])
        while found != -1:
            doc = int(np.searchsorted(starts, found, side="right")) - 1
            if a_text in documents[doc] and b_text in documents[doc]:
                same_document += 1
                break
            found = haystack.find(a_text[:12], found + 1)
        chosen = set(positions.tolist())
        for offset, segment, text in ((1, a, a_text), (a_length, b, b_text)):
            words = jieba.lcut(text, HMM=False)
            pieces = tokenizer.encode_plain(words)
            if sum(map(len, pieces)) != len(segment):
                continue  # jieba on the decoded text does not line up with the tokens; leave it out
            position = offset
            for piece in pieces:
                if len(piece) >= 2:
                    inside = sum(p in chosen for p in range(position, position + len(piece)))
                    whole += inside in (0, len(piece))
                    partial += 0 < inside < len(piece)
                position += len(piece)
    return {"masked_fraction": masked / tokens, "sop_balance": swapped / instances, "checked": checked,
            "same_document": same_document / checked, "all_or_none": whole / (whole + partial)}


def normalised_documents(path: Path) -> list[str]:
    """Each document's text as the tokenizer sees it: lower case, accents stripped, no whitespace."""
    text = unicodedata.normalize("NFD", path.read_text(encoding="utf-8").lower())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return ["".join(doc.split()) for doc in text.split("\n\n") if doc.strip()]


# ---------------------------------------------------------------- reading


def test_split_sentences():
    assert split_sentences("你好。我是谁？“真的吗！”他说。\nNext one. Pi is 3.14 ok") == [
        "你好。", "我是谁？", "“真的吗！”", "他说。", "Next one.", "Pi is 3.14 ok"]


def test_expand_inputs(tmp_path):
    (tmp_path / "a.txt").write_text("一\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n'))
    (tmp_path / "sub" / "notes.md").write_text("no")
    assert expand_inputs([str(tmp_path)]) == [tmp_path / "a.txt", tmp_path / "sub" / "b.jsonl.gz"]
    assert expand_inputs([str(tmp_path / "*.txt"), str(tmp_path / "a.txt")]) == [tmp_path / "a.txt"]
    with pytest.raises(FileNotFoundError, match="input not found"):
        expand_inputs([str(tmp_path / "missing.txt")])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.csv")])


def test_formats_give_the_same_instances(tmp_path):
    docs = write_built_corpus(tmp_path / "corpus.txt", documents=30, endings="。！？")
    (tmp_path / "jsonl").mkdir()
    lines = "".join(json.dumps({"text": "".join(d)}, ensure_ascii=False) + "\n" for d in docs)
    (tmp_path / "jsonl" / "corpus.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    txt = prepare_data(config([tmp_path / "corpus.txt"], tmp_path / "a", masking="static"))
    jsonl = prepare_data(config([tmp_path / "jsonl"], tmp_path / "b", masking="static"))
    assert txt.instances > 30 and shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert jsonl.sentences == txt.sentences


# ---------------------------------------------------------------- the bar 1


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    write_built_corpus(root / "corpus.txt")
    return root


def test_bar_one_on_a_built_corpus(built, monkeypatch):
    monkeypatch.setattr(prepare, "CHUNK_CHARS", 2_000)  # many chunks, so workers really split the work
    one = prepare_data(config([built / "corpus.txt"], built / "w1", masking="static", dupe_factor=3))
    two = prepare_data(config([built / "corpus.txt"], built / "w2", masking="static", dupe_factor=3, workers=2))
    assert shard_bytes(built / "w1") == shard_bytes(built / "w2")
    assert one.instances == two.instances > 1000
    stats = bar_one_statistics(built / "w1", normalised_documents(built / "corpus.txt"), load_tokenizer(None))
    assert abs(stats["masked_fraction"] - 0.15) <= 0.01, stats
    assert abs(stats["sop_balance"] - 0.5) <= 0.02, stats
    assert stats["same_document"] == 1.0 and stats["all_or_none"] >= 0.95, stats
    # these documents are short, so are many instances: fewer spans fit each budget, and a long
    # span drawn last fits less often than a short one, which bends 1/n toward 1-word spans
    # (about +2 points on the shared corpus's fuller instances, +3.5 here)
    spans = np.array(one.span_lengths) / sum(one.span_lengths)
    assert np.abs(spans - ngram_probabilities(3)).max() <= 0.05, spans


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    if not SHARED_CORPUS.exists():
        pytest.skip(f"{SHARED_CORPUS} is not on this machine (CI and the team's machines have it)")
    return tmp_path_factory.mktemp("shared")


def test_bar_one_on_the_shared_corpus(shared):
    summary = prepare_data(config([SHARED_CORPUS], shared / "w2", masking="static", workers=2))
    stats = bar_one_statistics(shared / "w2", normalised_documents(SHARED_CORPUS), load_tokenizer(None))
    assert abs(summary.masked_fraction - 0.15) <= 0.01 and abs(stats["masked_fraction"] - 0.15) <= 0.01, stats
    assert abs(summary.sop_balance - 0.5) <= 0.02, summary
    assert stats["checked"] > 400 and stats["same_document"] == 1.0, stats
    assert stats["all_or_none"] >= 0.95, stats
    spans = np.array(summary.span_lengths) / sum(summary.span_lengths)
    assert np.abs(spans - ngram_probabilities(3)).max() <= 0.03, spans
    prepare_data(config([SHARED_CORPUS], shared / "w1", masking="static", workers=1))
    assert shard_bytes(shared / "w1") == shard_bytes(shared / "w2")


def test_nsp_task(built):
    summary = prepare_data(config([built / "corpus.txt"], built / "nsp", task="nsp"))
    assert summary.instances > 300 and abs(summary.sop_balance - 0.5) < 0.08


# ---------------------------------------------------------------- output folder: resume, refuse, overwrite


def test_resume_after_an_interruption_gives_the_same_shards(built, monkeypatch):
    monkeypatch.setattr(prepare, "CHUNK_CHARS", 2_000)
    whole = config([built / "corpus.txt"], built / "whole", shard_size=200)
    prepare_data(whole)
    interrupted = config([built / "corpus.txt"], built / "resumed", shard_size=200)
    real_write = prepare._write_shard

    def write_two_then_stop(out, index, buffered):
        if index == 2:
            raise KeyboardInterrupt
        return real_write(out, index, buffered)

    monkeypatch.setattr(prepare, "_write_shard", write_two_then_stop)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(interrupted)
    assert not (built / "resumed" / "manifest.json").exists()
    assert sorted(p.name for p in (built / "resumed").glob("shard-*")) == ["shard-00000.npy", "shard-00001.npy"]
    monkeypatch.setattr(prepare, "_write_shard", real_write)
    summary = prepare_data(interrupted)
    assert shard_bytes(built / "resumed") == shard_bytes(built / "whole")
    assert summary.instances == read_manifest(built / "whole")["instances"]
    assert not (built / "resumed" / "progress.json").exists()


def test_rerun_is_a_no_op_and_other_options_are_refused(built, caplog):
    first = prepare_data(config([built / "corpus.txt"], built / "again"))
    mtime = (built / "again" / "manifest.json").stat().st_mtime_ns
    assert prepare_data(config([built / "corpus.txt"], built / "again")).instances == first.instances
    assert (built / "again" / "manifest.json").stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match="another run's shards.*max_seq_length: 128 -> 64.*--overwrite"):
        prepare_data(config([built / "corpus.txt"], built / "again", max_seq_length=64))
    summary = prepare_data(config([built / "corpus.txt"], built / "again", max_seq_length=64, overwrite=True))
    assert read_manifest(built / "again")["max_seq_length"] == 64 and summary.instances > first.instances


# ---------------------------------------------------------------- bad input


def test_bad_input_is_skipped_counted_and_located(tmp_path):
    good = ["今天天气很好。", "我们去公园散步。", "公园里有很多花。"]
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"\n".join([
        *(s.encode() for s in good), b"",
        "坏的编码".encode() + b"\xff\xfe", "正常的一句话。".encode(), "控制字符\x07在这里。".encode(), b"",
        "只有一句话的文档。".encode(), b"", b"", b"   ", b"",
        ("没有标点" * 25_000).encode(), "后面还有一句。".encode(), b""]))
    summary = prepare_data(config([corpus], tmp_path / "out", masking="static"))
    assert summary.skipped["invalid UTF-8"] == 1
    assert summary.skipped_examples["invalid UTF-8"] == [f"{corpus}:5"]
    assert summary.skipped["one-sentence documents"] == 1
    assert summary.notes["lines with control characters (removed)"] == 1
    assert any("cut into pieces" in note for note in summary.notes)
    assert summary.instances > 100  # the 100,000-character line became many instances
    text = "\n".join(summary.lines())
    assert f"{corpus}:5" in text and "invalid UTF-8" in text
    tokens = {t for line in inspect_data(tmp_path / "out", num=1000, as_json=True) for t in json.loads(line)["tokens"]}
    assert "\x07" not in "".join(tokens)


def test_bad_jsonl_lines(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"text": "第一句。第二句！第三句？"}\nnot json\n{"title": "no text"}\n{"text": ""}\n\n', encoding="utf-8")
    summary = prepare_data(config([corpus], tmp_path / "out"))
    assert summary.skipped == {"invalid JSON": 1, "JSON line without a text string": 1, "empty documents": 1}
    assert summary.skipped_examples["invalid JSON"] == [f"{corpus}:2"] and summary.instances >= 1


def test_missing_input_fails_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="input not found"):
        prepare_data(config([tmp_path / "nope.txt"], tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_empty_corpus_fails_without_shards(tmp_path):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n\n只有一句。\n\n   \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no training instances"):
        prepare_data(config([corpus], tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # a failed command leaves nothing behind
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match="no training instances"):
        prepare_data(config([corpus], tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())  # the user's folder stays


def test_foreign_shards_are_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shard-00000.npy").write_bytes(b"old")
    corpus = tmp_path / "c.txt"
    write_built_corpus(corpus, documents=5)
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_data(config([corpus], tmp_path / "out"))
    assert prepare_data(config([corpus], tmp_path / "out", overwrite=True)).instances > 0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="--masked-lm-prob.*--dupe-factor"):
        PrepareConfig(inputs=("x",), out="o", masked_lm_prob=1.5, dupe_factor=0)


# ---------------------------------------------------------------- command line and inspect


def test_arguments_build_the_config():
    parser = argparse.ArgumentParser()
    add_prepare_arguments(parser)
    args = parser.parse_args(["a.txt", "docs/", "--out", "o", "--no-wwm", "--task", "nsp", "--workers", "3"])
    built = prepare_config_from_args(args)
    assert built == PrepareConfig(inputs=("a.txt", "docs/"), out="o", whole_word=False, task="nsp", workers=3)
    defaults = prepare_config_from_args(parser.parse_args(["a.txt", "--out", "o"]))
    assert (defaults.max_seq_length, defaults.max_predictions, defaults.ngram, defaults.masking) == (512, 20, 3, "dynamic")
    inspect = argparse.ArgumentParser()
    add_inspect_arguments(inspect)
    assert vars(inspect.parse_args(["d", "--num", "2", "--json"])) == {"dir": "d", "num": 2, "json": True}


def test_inspect_json_lines(built):
    prepare_data(config([built / "corpus.txt"], built / "inspect", masking="static"))
    rows = [json.loads(line) for line in inspect_data(built / "inspect", num=3, as_json=True)]
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"tokens", "segment_ids", "masked_positions", "masked_labels", "sop_label"}
        assert row["tokens"][0] == "[CLS]" and row["tokens"][-1] == "[SEP]" and row["sop_label"] in (0, 1)
        assert len(row["segment_ids"]) == len(row["tokens"]) and row["segment_ids"][0] == 0 and row["segment_ids"][-1] == 1
        assert len(row["masked_positions"]) == len(row["masked_labels"]) >= 1
    text = next(inspect_data(built / "inspect", num=1))
    assert text.startswith("instance 0") and "masked:" in text
    assert Counter(len(list(inspect_data(built / "inspect", num=n))) for n in (0, 2)) == Counter([0, 2])


def test_a_file_without_blank_lines_is_cut_into_bounded_documents(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "MAX_DOCUMENT_CHARS", 50)
    corpus = tmp_path / "one_long_document.txt"
    corpus.write_text("".join(f"第{i}句话说的是今天天气很好我们一起去公园。\n" for i in range(10)), encoding="utf-8")
    documents = list(prepare.read_documents([corpus], stats := prepare.ReadStats()))
    assert [len(d) for d in documents] == [3, 3, 3, 1]  # 21-character lines: a cut after every third
    assert stats.notes["documents cut at 50 characters"] == 3
