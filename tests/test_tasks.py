"""Task readers on small files in each task's official format, label sets, bad-row reports."""

import json
import logging

import pytest

from albert_zh.tasks import (
    TASKS,
    TNEWS_LABELS,
    Entity,
    custom_task,
    get_task,
    label_set,
    ner_task,
    read_examples,
    task_files,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# one labelled row per CLUE task, as the official train/dev files have it
CLUE_ROWS = {
    "afqmc": ({"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱", "label": "1"}, ("花呗怎么还款", "花呗如何还钱", "1")),
    "tnews": ({"label": "102", "label_desc": "news_entertainment", "sentence": "明星新电影上映", "keywords": "电影"},
              ("明星新电影上映", None, "102")),
    "iflytek": ({"label": "110", "label_des": "社区超市", "sentence": "一款买菜的应用"}, ("一款买菜的应用", None, "110")),
    "cmnli": ({"sentence1": "他在跑步", "sentence2": "他在运动", "label": "entailment"},
              ("他在跑步", "他在运动", "entailment")),
    "ocnli": ({"sentence1": "今天下雨", "sentence2": "今天是晴天", "label": "contradiction", "genre": "news", "id": 3},
              ("今天下雨", "今天是晴天", "contradiction")),
    "cluewsc2020": ({"target": {"span2_index": 5, "span1_index": 0, "span1_text": "小明", "span2_text": "他"},
                     "idx": 0, "label": "true", "text": "小明说他饿了"}, ("小明说他饿了", "他指的是小明", "true")),
    "csl": ({"id": 1, "abst": "本文提出一种新方法", "keyword": ["方法", "模型"], "label": "0"},
            ("方法 模型", "本文提出一种新方法", "0")),
    "xnli": ({"premise": "猫在睡觉", "hypo": "猫醒着", "label": "contradiction"}, ("猫在睡觉", "猫醒着", "contradiction")),
}


@pytest.mark.parametrize("task", sorted(CLUE_ROWS))
def test_clue_readers(tmp_path, task):
    row, (a, b, label) = CLUE_ROWS[task]
    result = read_examples(get_task(task), write_jsonl(tmp_path / "train.json", [row, row]))
    assert not result.bad_rows
    e = result.examples[1]
    assert (e.text_a, e.text_b, e.label) == (a, b, label)
    assert e.where.endswith("train.json:2")


def test_clue_test_files_are_unlabelled_and_keep_ids(tmp_path):
    path = write_jsonl(tmp_path / "test.json", [{"id": 7, "sentence1": "借呗额度", "sentence2": "借呗的额度"},
                                                {"id": 8, "sentence1": "花呗", "sentence2": "借呗"}])
    result = read_examples(get_task("afqmc"), path, labelled=False)
    assert [(e.id, e.label) for e in result.examples] == [(7, None), (8, None)]


def test_test_file_with_labels_warns(tmp_path, caplog):
    path = write_jsonl(tmp_path / "test.json", [{"id": 0, "sentence1": "借呗", "sentence2": "花呗", "label": "0"}])
    with caplog.at_level(logging.WARNING):
        read_examples(get_task("afqmc"), path, labelled=False)
    assert "test file has labels" in caplog.text


def test_lcqmc_and_bq_read_tab_separated_pairs(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("喜欢打篮球的男生喜欢什么样的女生\t爱打篮球的男生喜欢什么样的女生\t1\n"
                    "我手机丢了\t我想换个手机\t0\n", encoding="utf-8")
    for task in ("lcqmc", "bq"):
        result = read_examples(get_task(task), path)
        assert [(e.text_b, e.label, e.id) for e in result.examples] == [
            ("爱打篮球的男生喜欢什么样的女生", "1", 0), ("我想换个手机", "0", 1)]  # ids: 0-based rows


def test_chnsenticorp_reads_its_header(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("label\ttext_a\n1\t房间很干净，服务也好\n0\t太吵了，不会再来\n", encoding="utf-8")
    result = read_examples(get_task("chnsenticorp"), path)
    assert [(e.text_a, e.text_b, e.label) for e in result.examples] == [
        ("房间很干净，服务也好", None, "1"), ("太吵了，不会再来", None, "0")]
    assert result.examples[0].where.endswith(":2")


def test_label_sets():
    assert TNEWS_LABELS == ("100", "101", "102", "103", "104", "106", "107", "108", "109", "110", "112", "113",
                            "114", "115", "116")
    assert len(TASKS["iflytek"].labels) == 119
    assert TASKS["cmnli"].labels == TASKS["ocnli"].labels == ("contradiction", "entailment", "neutral")
    assert TASKS["cluewsc2020"].labels == ("false", "true")


def test_submission_names():
    names = {t: s.submission for t, s in TASKS.items() if s.submission}
    assert names == {"afqmc": "afqmc_predict.json", "tnews": "tnews11_predict.json",
                     "iflytek": "iflytek_predict.json", "cmnli": "cmnli_predict.json",
                     "ocnli": "ocnli_50k_predict.json", "cluewsc2020": "cluewsc11_predict.json",
                     "csl": "csl_predict.json", "cluener": "cluener_predict.json"}


def test_bad_rows_are_counted_with_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("a句\tb句\t1\n"  # good
                     "只有两列\t1\n"  # wrong column count
                     "a句\tb句\t5\n"  # unknown label
                     "\tb句\t0\n"  # empty text
                     .encode() + b"\xff\xfe bad\tb\t1\n" + "好的\t对的\t0\n".encode())
    result = read_examples(get_task("lcqmc"), path)
    assert [e.id for e in result.examples] == [0, 5]  # rows of the file, bad ones counted
    reasons = {b.line: b.reason for b in result.bad_rows}
    assert sorted(reasons) == [2, 3, 4, 5]
    assert reasons[2].startswith("wrong column count")
    assert reasons[3].startswith("unknown label: '5'")
    assert reasons[4].startswith("empty text")
    assert reasons[5].startswith("invalid UTF-8")
    assert "4 bad rows" in result.summary()
    with pytest.raises(ValueError, match=r"train.txt:2: wrong column count"):
        read_examples(get_task("lcqmc"), path, strict=True)


def test_a_header_where_none_is_expected(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text("text_a\ttext_b\tlabel\n你好\t您好\t1\n", encoding="utf-8")
    result = read_examples(get_task("lcqmc"), path)
    assert len(result.examples) == 1
    assert result.bad_rows[0].line == 1 and "header" in result.bad_rows[0].reason
    unlabelled = read_examples(get_task("lcqmc"), path, labelled=False)  # also when predicting
    assert [e.text_a for e in unlabelled.examples] == ["你好"] and unlabelled.bad_rows[0].line == 1


def test_disagreement_labels_are_dropped_not_bad(tmp_path):
    path = write_jsonl(tmp_path / "dev.json", [{"sentence1": "甲", "sentence2": "乙", "label": "-"},
                                               {"sentence1": "甲", "sentence2": "乙", "label": "neutral"}])
    result = read_examples(get_task("cmnli"), path)
    assert (len(result.examples), result.skipped, len(result.bad_rows)) == (1, 1, 0)


def test_broken_json_lines(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"sentence": "好", "label": "0"}\n{not json\n[1, 2]\n{"label": "0"}\n', encoding="utf-8")
    result = read_examples(get_task("iflytek"), path)
    assert [b.reason.split(":")[0] for b in result.bad_rows] == ["not JSON", "not a JSON object", "empty text"]


def test_custom_csv_with_header_and_labels_from_training(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('问题,回答,类别\n"你好,世界",世界你好,yes\n吃了吗,没吃,no\n', encoding="utf-8")
    spec = custom_task("csv", "问题", "回答", "类别", header=True)
    result = read_examples(spec, path)
    assert [(e.text_a, e.label) for e in result.examples] == [("你好,世界", "yes"), ("吃了吗", "no")]
    assert label_set(spec, result) == ("no", "yes")


def test_custom_tsv_by_column_number_and_jsonl(tmp_path):
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("pos\t真好吃\npos\t很好\nneg\t难吃\n", encoding="utf-8")
    spec = custom_task("tsv", "1", None, "0", header=False)
    assert [e.label for e in read_examples(spec, tsv).examples] == ["pos", "pos", "neg"]
    jl = write_jsonl(tmp_path / "mine.jsonl", [{"q": "天气", "y": 1}, {"q": "下雨", "y": 0}])
    assert [e.label for e in read_examples(custom_task("jsonl", "q", None, "y", False), jl).examples] == ["1", "0"]
    with pytest.raises(ValueError, match="must be a number"):
        custom_task("tsv", "text", None, "label", header=False)
    with pytest.raises(ValueError, match="at least 2"):
        label_set(spec, read_examples(spec, tsv, labels=("pos",)))


def test_task_folder_without_dev(tmp_path):
    (tmp_path / "train.json").write_text("", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="no dev file"):
        task_files(get_task("afqmc"), tmp_path)
    (tmp_path / "dev.json").write_text("", encoding="utf-8")
    assert task_files(get_task("afqmc"), tmp_path)["test"] is None


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        get_task("glue")


# ---- named entities -----------------------------------------------------------------------

CLUENER_ROW = {"text": "浙商银行的叶老桂说", "label": {"name": {"叶老桂": [[5, 7]]}, "company": {"浙商银行": [[0, 3]]}}}


def test_cluener_reads_inclusive_ends_as_exclusive_spans(tmp_path):
    test_row = {"id": 7, "text": "北京欢迎你"}
    result = read_examples(get_task("cluener"), write_jsonl(tmp_path / "train.json", [CLUENER_ROW]))
    (e,) = result.examples
    assert e.entities == (Entity(0, 4, "company"), Entity(5, 8, "name"))
    assert [e.text_a[s.start:s.end] for s in e.entities] == ["浙商银行", "叶老桂"]
    (t,) = read_examples(get_task("cluener"), write_jsonl(tmp_path / "test.json", [test_row]), labelled=False).examples
    assert (t.id, t.entities) == (7, None)


def test_conll_reads_bio_and_bioes_sentences(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("张\tB-PER\n三\tI-PER\n在\tO\n北\tB-LOC\n京\tI-LOC\n\n\n上\tS-LOC\n海\tO\n人\tB-ORG\n民\tI-ORG\n"
                    "社\tE-ORG\n", encoding="utf-8")
    first, second = read_examples(get_task("msra_ner"), path).examples
    assert (first.text_a, first.entities) == ("张三在北京", (Entity(0, 2, "PER"), Entity(3, 5, "LOC")))
    assert (second.text_a, second.where) == ("上海人民社", f"{path}:8")
    assert second.entities == (Entity(0, 1, "LOC"), Entity(2, 5, "ORG"))


def test_spans_format_and_types_learnt_from_training(tmp_path):
    spec = ner_task("spans")
    rows = [{"text": "我爱北京", "entities": [{"start": 2, "end": 4, "type": "地点", "text": "北京"}]},
            {"text": "小明来了", "entities": [{"start": 0, "end": 2, "type": "人名"}]}]
    result = read_examples(spec, write_jsonl(tmp_path / "train.jsonl", rows))
    assert [e.entities for e in result.examples] == [(Entity(2, 4, "地点"),), (Entity(0, 2, "人名"),)]
    assert label_set(spec, result) == ("人名", "地点")
    with pytest.raises(ValueError, match="conll or spans"):
        ner_task("bio")


def test_bad_entity_rows_are_listed_with_file_and_line(tmp_path):
    conll = tmp_path / "train.txt"
    conll.write_text("张\tB-PER\n三\tI-PER\n\n李\tO\n四\tI-PER\n\n王\tB-XYZ\n\n赵\tB-PER\n钱 B-PER\n\n"
                     "孙\tQ-PER\n\n周\tB-LOC\n", encoding="utf-8")
    result = read_examples(get_task("msra_ner"), conll)
    assert [(b.line, b.reason.split(":")[0]) for b in result.bad_rows] == [
        (5, "I-PER without its B-PER"), (7, "unknown type"), (10, "no tab between token and tag"),
        (12, "unknown tag")]
    assert [e.text_a for e in result.examples] == ["张三", "周"]
    with pytest.raises(ValueError, match=f"{conll}:5: I-PER without its B-PER"):
        read_examples(get_task("msra_ner"), conll, strict=True)

    rows = [CLUENER_ROW,
            {"text": "北京", "label": {"place": {"北京": [[0, 1]]}}},
            {"text": "北京", "label": {"address": {"北京": [[0, 5]]}}},
            {"text": "北京", "label": {"address": {"南京": [[0, 1]]}}},
            {"text": "北京市", "label": {"address": {"北京市": [[0, 2]], "北京": [[0, 1]]}}}]
    result = read_examples(get_task("cluener"), write_jsonl(tmp_path / "c.json", rows))
    assert [(b.line, b.reason.split(":")[0]) for b in result.bad_rows] == [
        (2, "unknown type"), (3, "span outside the text"), (4, "span does not match its entity text"),
        (5, "overlapping spans")]
