"""The README's main job: the whole flow on the bundled Chinese sample, in a few CPU minutes.

sample_corpus.txt -> prepare-data -> pretrain (tiny_google, pretrain's default recipe, a few steps) -> fine-tune
on sample_pairs.txt (LCQMC format) -> export to ONNX int8 -> a similarity query. The sample is
tiny (12 documents, 48 pairs), so the numbers show that every stage runs end to end, not
what the model can learn; EVALUATION.md reports the real-data runs. It names every file a
user would open (models, curves, ONNX files) and keeps what it writes small: no resume checkpoints.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from importlib import resources
from pathlib import Path

import torch

from albert_zh.export import export_onnx
from albert_zh.finetune import BEST_DIR, CURVE_NAME, FinetuneConfig, finetune
from albert_zh.inference import SentenceSimilarity
from albert_zh.model import AlbertConfig, closed_form_parameter_count
from albert_zh.prepare import PrepareConfig, prepare_data
from albert_zh.pretrain import PretrainConfig, plot_run, pretrain

MARKER = ".albert_zh_demo"
QUERIES = [("我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝"), ("今天天气怎么样", "今天股市怎么样"),
           ("孩子发烧了怎么办", "小孩发烧应该怎么处理"), ("这部手机多少钱", "这部电影好看吗")]


def _step(title: str):
    print(f"\n== {title}", flush=True)


def _resource(name: str) -> str:
    return str(resources.files("albert_zh") / "resources" / name)


def run_demo(out: str | Path, threads: int = 1, pretrain_steps: int = 60, finetune_epochs: int = 15):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise FileExistsError(f"--out {out} is not empty and not an earlier demo's folder: choose another")
        shutil.rmtree(out)  # an earlier demo's output: start afresh
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `albert-zh demo`; the next demo run replaces this folder\n")
    torch.set_num_threads(threads)
    logging.getLogger("albert_zh").setLevel(logging.WARNING)  # the demo prints its own summary of each stage
    started = time.perf_counter()

    config = AlbertConfig.preset("tiny_google")
    counts = closed_form_parameter_count(config)
    _step("1. model: tiny_google (albert_tiny's sizes in Google's layout, pretrain's default)")
    print(f"{config.num_hidden_layers} layers sharing '{config.sharing}', H={config.hidden_size}, "
          f"E={config.embedding_size}: {counts['pretraining']:,} parameters with the MLM and SOP heads")

    _step("2. prepare-data: the bundled sample corpus -> pretraining shards")
    summary = prepare_data(PrepareConfig(inputs=(_resource("sample_corpus.txt"),), out=str(out / "data"),
                                         max_seq_length=64, dupe_factor=4, workers=1))
    print("\n".join(summary.lines()))

    _step(f"3. pretrain: MLM + sentence order, the default recipe (--init local, Muon + AdamW), {pretrain_steps} steps")
    model_dir = pretrain(PretrainConfig(data=str(out / "data"), out=str(out / "pretrain"),
                                        batch_size=16, max_steps=pretrain_steps,
                                        keep_checkpoints=0,  # resume checkpoints (51 MB each) a newcomer never needs
                                        eval_every=pretrain_steps // 2, eval_data=str(out / "data")))
    records = [json.loads(line) for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    final_eval = [r for r in records if r["split"] == "eval"][-1]
    print(f"loss {train[0]['loss']:.2f} at step 1 -> {train[-1]['loss']:.2f} at step {train[-1]['step']}; "
          f"MLM accuracy {final_eval['mlm_accuracy']:.1%} (reading no context, copying the kept tokens and "
          f"guessing the most frequent one: {final_eval['mlm_copy_or_most_frequent_accuracy']:.1%}), "
          f"SOP accuracy {final_eval['sop_accuracy']:.1%} "
          "(measured on the training sample itself: it has no held-out part)")
    pretrain_curves = plot_run(out / "pretrain")
    print(f"model: {model_dir}\ncurves: {pretrain_curves}")

    _step(f"4. finetune: sentence-pair similarity (LCQMC format), {finetune_epochs} epochs on 48 bundled pairs")
    pairs = _resource("sample_pairs.txt")
    results = finetune(FinetuneConfig(task="lcqmc", model=str(model_dir), out=str(out / "finetune"), train=pairs,
                                      dev=pairs, epochs=finetune_epochs, batch_size=16, lr=5e-4, max_seq_length=32,
                                      seed=0))
    curve = " ".join(f"{h['dev_accuracy']:.2f}" for h in results["history"])
    print(f"accuracy on the training pairs by epoch: {curve}; best epoch {results['best_epoch']}\n"
          f"model: {out / 'finetune' / BEST_DIR}\ncurves: {out / 'finetune' / CURVE_NAME}")

    _step("5. export: ONNX fp32 and int8, checked against PyTorch")
    best = out / "finetune" / BEST_DIR
    for report in (export_onnx(best, best / "model.onnx"), export_onnx(best, best / "model.int8.onnx", "int8")):
        print("\n".join(report.lines()))

    _step("6. similarity query through the int8 model (pairs from the 48 it was trained on)")
    similarity = SentenceSimilarity.load(best, backend="onnx-int8")
    for (a, b), score in zip(QUERIES, similarity.predict(QUERIES), strict=True):
        print(f"  {score:.3f}  {a} / {b}")
    print(f"\nthe same from Python: SentenceSimilarity.load({str(best)!r}, backend='onnx-int8').predict(pairs)")
    print(f"or over HTTP: albert-zh serve {best} --backend onnx-int8")
    print(f"\ndone in {time.perf_counter() - started:.0f} s")
