"""Fine-tuning, evaluate/predict, the CLUE runner (submissions, resume, failures) and download, on a small model."""

import functools
import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from albert_zh import cli
from albert_zh import finetune as ft
from albert_zh.model import AlbertConfig, AlbertForPreTraining
from albert_zh.tasks import get_task

POSITIVE = ["很好", "非常好", "好吃", "喜欢", "好看", "满意", "很棒", "好用"]
NEGATIVE = ["很差", "太差", "难吃", "讨厌", "难看", "失望", "很烂", "难用"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small AlbertForPreTraining directory: MLM and SOP heads, no classifier."""
    path = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    config = AlbertConfig(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64)
    AlbertForPreTraining(config).save_pretrained(path)
    return path


def write_senti(path, rows):
    path.write_text("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def senti(tmp_path_factory):
    d = tmp_path_factory.mktemp("senti")
    rows = [(1, w) for w in POSITIVE] + [(0, w) for w in NEGATIVE]
    write_senti(d / "train.tsv", rows * 3)
    write_senti(d / "dev.tsv", rows)
    write_senti(d / "test.tsv", rows[::-1])
    return d


@pytest.fixture(scope="module")
def trained(pretrained, senti, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = ft.FinetuneConfig(task="chnsenticorp", model=str(pretrained), out=str(out), data_dir=str(senti),
                               epochs=6, batch_size=8, lr=2e-3, warmup_ratio=0.1, seed=1, max_seq_length=16)
    return out, ft.finetune(config)


def test_finetune_learns_and_writes_its_outputs(trained):
    out, results = trained
    assert results["dev"]["accuracy"] == 1.0  # the words separate the classes: a working loop learns them
    assert results["test"]["accuracy"] == 1.0
    assert json.loads((out / "results.json").read_text())["best_epoch"] == results["best_epoch"]
    assert [h["epoch"] for h in results["history"]] == list(range(1, len(results["history"]) + 1))
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob("*.tmp"))


def test_the_curve_says_when_dev_is_the_training_file(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "dev_loss": 1 / e, "dev_accuracy": e / 3, "dev_macro_f1": e / 3}
               for e in (1, 2, 3)]
    figure = ft.plot_curve(history, tmp_path / "curve.png", "fine-tuning lcqmc", "dev (= train file)")
    labels = [t.get_text() for ax in figure.axes for t in ax.get_legend().get_texts()]
    assert "dev (= train file) accuracy" in labels and "dev (= train file) loss" in labels
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy and macro-F1"]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_pretraining_heads_dropped_and_classifier_new(pretrained, senti, tmp_path, caplog):
    with caplog.at_level("INFO"):
        model, _ = ft.load_classifier(str(pretrained), ("0", "1"))
    assert "not used by AlbertForSequenceClassification: predictions, sop_classifier" in caplog.text
    assert "newly initialised in AlbertForSequenceClassification" in caplog.text and "classifier" in caplog.text
    assert model.config.id2label == {0: "0", 1: "1"}


def test_best_checkpoint_carries_labels_and_loads_in_transformers(trained, senti):
    out, _ = trained
    raw = json.loads((out / "best" / "config.json").read_text())
    assert raw["id2label"] == {"0": "0", "1": "1"} and raw["num_labels"] == 2
    ours, tokenizer = ft.load_finetuned(out / "best")
    theirs = transformers.AlbertForSequenceClassification.from_pretrained(out / "best").eval()
    assert theirs.config.id2label == {0: "0", 1: "1"}
    batch = tokenizer(["很好", "太差了"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=1e-4)


def test_id2label_must_match_num_labels():
    with pytest.raises(ValueError, match="id2label"):
        AlbertConfig(num_labels=3, id2label={0: "a", 1: "b"})
    assert AlbertConfig.from_dict({"model_type": "albert", "id2label": {"0": "x", "1": "y", "2": "z"}}).num_labels == 3


def test_evaluate_uses_the_same_loop_as_dev(trained, senti):
    out, results = trained
    again = ft.evaluate(out / "best", get_task("chnsenticorp"), senti / "dev.tsv", max_seq_length=16)
    assert again["accuracy"] == results["dev"]["accuracy"]
    assert again["loss"] == pytest.approx(results["dev"]["loss"], rel=1e-4)


def test_metrics_by_hand():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.1, 0.2, 0.7]])
    m = ft.metrics(probs, [0, 1, 1, 2], 3)
    assert m["accuracy"] == 0.75
    # class 0: tp 1 fp 1 fn 0 -> 2/3; class 1: tp 1 fp 0 fn 1 -> 2/3; class 2: 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))


def test_predict_writes_ids_labels_probabilities(trained, senti, tmp_path):
    out, _ = trained
    n = ft.predict(out / "best", get_task("chnsenticorp"), senti / "test.tsv", tmp_path / "p.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert n == len(rows) == 16
    assert [r["id"] for r in rows] == list(range(16))  # 0-based rows, the header not counted (no id field)
    assert rows[0]["label"] == "0" and rows[-1]["label"] == "1"  # test.tsv is dev reversed
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)


def write_reviews(path, rows, header="评论,情感"):
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_a_custom_model_remembers_its_task_for_evaluate_and_predict(pretrained, tmp_path, capsys):
    rows = [(w, "pos") for w in POSITIVE] + [(w, "neg") for w in NEGATIVE]
    train, dev = write_reviews(tmp_path / "train.csv", rows * 2), write_reviews(tmp_path / "dev.csv", rows)
    best = str(tmp_path / "run" / "best")
    assert cli.main(["finetune", "--task", "custom", "--text-a-col", "评论", "--label-col", "情感", "--header",
                     "--model", str(pretrained), "--train", train, "--dev", dev, "--out", str(tmp_path / "run"),
                     "--epochs", "1", "--max-seq-length", "8"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", best, "--data", dev]) == 0  # no --task, no columns: task.json says
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["examples"] == 16
    unlabelled = write_reviews(tmp_path / "new.csv", [("很好",), ("难吃",)], header="评论")
    assert cli.main(["predict", "--model", best, "--input", unlabelled, "--output", str(tmp_path / "a.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1] and {r["label"] for r in rows} <= {"neg", "pos"}
    (Path(best) / "task.json").unlink()  # a model fine-tuned before task.json existed
    assert cli.main(["predict", "--model", best, "--input", unlabelled, "--output", str(tmp_path / "b.jsonl")]) == 2
    assert "pass --task" in capsys.readouterr().err


def test_predict_a_custom_file_without_labels(trained, tmp_path, capsys):
    out, _ = trained
    unlabelled = write_reviews(tmp_path / "new.csv", [("很好",), ("难吃",), ("喜欢",)], header="评论")
    assert cli.main(["predict", "--model", str(out / "best"), "--task", "custom", "--text-a-col", "评论", "--header",
                     "--input", unlabelled, "--output", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [(0, "1"), (1, "0"), (2, "1")]


def test_label_map_mismatch_is_an_error(trained, tmp_path):
    out, _ = trained
    data = tmp_path / "dev.json"
    data.write_text(json.dumps({"sentence": "体育新闻", "label": "103"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="predicts the labels"):
        ft.evaluate(out / "best", get_task("tnews"), data)
    with pytest.raises(ValueError, match="fine-tuned for the labels"):
        ft.load_classifier(str(out / "best"), get_task("tnews").labels)


def test_cli_evaluate_prints_json_and_errors_exit_2(trained, senti, capsys):
    out, _ = trained
    assert cli.main(["evaluate", "--model", str(out / "best"), "--task", "chnsenticorp",
                     "--data", str(senti / "dev.tsv"), "--max-seq-length", "16"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] == 1.0
    assert cli.main(["finetune", "--task", "lcqmc", "--model", "tiny", "--out", str(senti / "x"),
                     "--data-dir", str(senti)]) == 2
    assert "no train file" in capsys.readouterr().err


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def clue_data(tmp_path):
    d = tmp_path / "clue"
    pairs = [{"sentence1": a, "sentence2": b, "label": str(int(a == b))} for a, b in
             [("花呗还款", "花呗还款"), ("借呗额度", "花呗分期"), ("余额宝", "余额宝"), ("转账", "提现")] * 3]
    (d / "afqmc").mkdir(parents=True)
    write_jsonl(d / "afqmc" / "train.json", pairs)
    write_jsonl(d / "afqmc" / "dev.json", pairs[:4])
    write_jsonl(d / "afqmc" / "test.json", [{"id": i, "sentence1": p["sentence1"], "sentence2": p["sentence2"]}
                                            for i, p in enumerate(pairs[:4], start=10)])
    news = [{"label": lab, "label_desc": "x", "sentence": s, "keywords": ""}
            for lab, s in [("103", "足球比赛"), ("104", "股票大涨"), ("102", "电影上映")] * 3]
    (d / "tnews").mkdir()
    write_jsonl(d / "tnews" / "train.json", news)
    write_jsonl(d / "tnews" / "dev.json", news[:3])
    write_jsonl(d / "tnews" / "test.json", [{"id": i, "sentence": n["sentence"]} for i, n in enumerate(news[:3])])
    (d / "csl").mkdir()  # no dev file: this task fails, the others must not
    write_jsonl(d / "csl" / "train.json", [{"id": 0, "abst": "摘要", "keyword": ["词"], "label": "1"}])
    return d


def test_clue_runner_submissions_table_and_resume(clue_data, pretrained, tmp_path, monkeypatch):
    out = tmp_path / "out"
    config = ft.ClueConfig(str(clue_data), str(pretrained), str(out), lrs=(1e-3, 3e-4), epochs=1, batch_size=4,
                           max_seq_length=16)
    zip_path = ft.run_clue(config)
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["afqmc_predict.json", "tnews11_predict.json"]
        afqmc = [json.loads(line) for line in z.read("afqmc_predict.json").decode().splitlines()]
        tnews = [json.loads(line) for line in z.read("tnews11_predict.json").decode().splitlines()]
    assert [r["id"] for r in afqmc] == [10, 11, 12, 13] and {r["label"] for r in afqmc} <= {"0", "1"}
    assert set(afqmc[0]) == {"id", "label"}
    assert [r["id"] for r in tnews] == [0, 1, 2] and {r["label"] for r in tnews} <= set(get_task("tnews").labels)
    table = (out / "clue_results.md").read_text()
    assert "| csl | failed | failed | none |" in table
    assert "afqmc_predict.json" in table and "tnews11_predict.json" in table

    calls = []

    def counting_finetune(cfg):
        calls.append((cfg.task, cfg.lr))
        raise FileNotFoundError("still no dev file")

    monkeypatch.setattr(ft, "finetune", counting_finetune)
    ft.run_clue(config)
    assert calls == [("csl", 1e-3), ("csl", 3e-4)]  # finished task/lr pairs are not run again
    assert (out / "clue_results.md").read_text() == table


def test_clue_config_rejects_non_clue_tasks():
    with pytest.raises(ValueError, match="not CLUE classification tasks"):
        ft.ClueConfig("d", "tiny", "o", tasks=("lcqmc",))


@pytest.fixture
def http_zip(tmp_path):
    """A zip like CLUE's served from 127.0.0.1; yields (url, sha256)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("afqmc_public/train.json", '{"sentence1": "a", "sentence2": "b", "label": "0"}\n')
        z.writestr("afqmc_public/dev.json", '{"sentence1": "a", "sentence2": "b", "label": "1"}\n')
    served = tmp_path / "served"
    served.mkdir()
    (served / "afqmc_public.zip").write_bytes(buf.getvalue())
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/afqmc_public.zip", hashlib.sha256(buf.getvalue()).hexdigest()
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_checks_sha256_and_unpacks(http_zip, tmp_path):
    url, digest = http_zip
    folder = ft.download("afqmc", tmp_path / "data", url=url, sha256=digest)
    assert sorted(p.name for p in folder.iterdir()) == ["dev.json", "train.json"]
    with pytest.raises(ValueError, match="does not match"):
        ft.download("afqmc", tmp_path / "other", url=url, sha256="0" * 64)
    assert not list((tmp_path / "other" / "afqmc").iterdir())


def test_patience_stops_early_in_bf16(pretrained, senti, tmp_path):
    # a vanishing learning rate leaves dev accuracy flat, so the second epoch is not better and training stops
    config = ft.FinetuneConfig(task="chnsenticorp", model=str(pretrained), out=str(tmp_path), data_dir=str(senti),
                               epochs=5, batch_size=16, lr=1e-12, patience=1, precision="bf16", max_seq_length=16)
    results = ft.finetune(config)
    assert [h["epoch"] for h in results["history"]] == [1, 2] and results["best_epoch"] == 1


def test_off_a_terminal_progress_is_a_line_per_epoch(pretrained, senti, tmp_path, capsys, caplog):
    caplog.set_level("INFO")
    ft.finetune(ft.FinetuneConfig(task="chnsenticorp", model=str(pretrained), out=str(tmp_path), data_dir=str(senti),
                                  epochs=2, batch_size=16, max_seq_length=16))
    assert "\r" not in capsys.readouterr().err  # pytest's capture is no terminal, as a log file or a pipe is not
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.getMessage().startswith("epoch")] == [
        "epoch 1", "epoch 2"]


def test_strict_turns_a_bad_row_into_an_error(pretrained, tmp_path, capsys):
    write_senti(tmp_path / "train.tsv", [(1, "好"), (0, "差"), (7, "未知标签")])
    write_senti(tmp_path / "dev.tsv", [(1, "好"), (0, "差")])
    args = ["finetune", "--task", "chnsenticorp", "--model", str(pretrained), "--data-dir", str(tmp_path),
            "--out", str(tmp_path / "out"), "--epochs", "1", "--max-seq-length", "8"]
    assert cli.main([*args, "--strict"]) == 2
    assert "train.tsv:4: unknown label: '7'" in capsys.readouterr().err
    assert cli.main(args) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["bad_rows"] == {"train": 1, "dev": 0}
