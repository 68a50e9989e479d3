"""Inference backends against transformers' AlbertModel (eager, fp32), tiny, on this CPU.

    python benchmarks/bench_deploy.py [--threads 2] [--rounds 5] [--agreement-model DIR]

Latency: batch 1 x 128 and batch 32 x 128, the same random ids for every runner, rounds
interleaved (each round runs every runner in turn), medians over all calls. Memory: each runner
again in a fresh process, its peak RSS after loading and running both shapes. With
--agreement-model (a fine-tuned LCQMC directory), also: how often int8 and fp32 ONNX predict the
same label on ../shared/data/lcqmc/dev.txt. Writes the "Deployment" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

from albert_zh.bench import peak_rss_bytes, random_batch  # noqa: E402

LCQMC_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "lcqmc" / "dev.txt"
SHAPES = ((1, 128), (32, 128))
RUNNERS = ("transformers", "torch", "onnx", "onnx-int8")


def make_runner(name: str, model_dir: Path, threads: int):
    """name -> call(ids, mask, types) giving the pooled output."""
    if name == "transformers":
        import torch
        import transformers

        torch.set_num_threads(threads)
        model = transformers.AlbertModel.from_pretrained(model_dir, attn_implementation="eager").eval()

        def run(*arrays):
            with torch.inference_mode():
                return model(*(torch.from_numpy(a) for a in arrays)).pooler_output.numpy()

        return run
    from albert_zh.inference import load_backend

    backend = load_backend(model_dir, name, threads)
    return lambda *arrays: backend(*arrays)["pooled_output"]


def latencies(model_dir: Path, threads: int, rounds: int, calls: dict) -> dict:
    runners = {name: make_runner(name, model_dir, threads) for name in RUNNERS}
    batches = {shape: random_batch(*shape, vocab_size=21128) for shape in SHAPES}
    reference = {shape: runners["transformers"](*batches[shape]) for shape in SHAPES}
    diffs = {name: max(float(np.abs(run(*batches[s]) - reference[s]).max()) for s in SHAPES)
             for name, run in runners.items()}
    times = {(name, shape): [] for name in RUNNERS for shape in SHAPES}
    for round_ in range(rounds):
        for shape in SHAPES:
            for name, run in runners.items():
                run(*batches[shape])  # warm the shape
                for _ in range(calls[shape]):
                    start = time.perf_counter()
                    run(*batches[shape])
                    times[(name, shape)].append(time.perf_counter() - start)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {np.median(times[(n, SHAPES[0])]) * 1e3:.1f} ms"
                                                  for n in RUNNERS), flush=True)
    return {"median_s": {f"{n}|{s[0]}x{s[1]}": float(np.median(t)) for (n, s), t in times.items()}, "diffs": diffs}


def _peak_memory(name: str, model_dir: str, threads: int) -> int:
    run = make_runner(name, Path(model_dir), threads)
    for shape in SHAPES:
        run(*random_batch(*shape, vocab_size=21128))
    return peak_rss_bytes()


def peak_memory(model_dir: Path, threads: int) -> dict:
    context = multiprocessing.get_context("spawn")
    out = {}
    for name in RUNNERS:
        with context.Pool(1) as pool:
            out[name] = pool.apply(_peak_memory, (name, str(model_dir), threads))
    return out


def agreement(model_dir: Path, threads: int) -> dict:
    from albert_zh.inference import Classifier
    from albert_zh.tasks import get_task, read_examples

    examples = read_examples(get_task("lcqmc"), LCQMC_DEV).examples
    pairs = [(e.text_a, e.text_b) for e in examples]
    labels = np.array([int(e.label) for e in examples])
    predictions = {}
    for backend in ("onnx", "onnx-int8"):
        classifier = Classifier.load(model_dir, backend=backend, threads=threads)
        predictions[backend] = classifier.predict_proba(pairs).argmax(1)
    return {"pairs": len(pairs), "agree": float((predictions["onnx"] == predictions["onnx-int8"]).mean()),
            "accuracy_fp32": float((predictions["onnx"] == labels).mean()),
            "accuracy_int8": float((predictions["onnx-int8"] == labels).mean())}


def section(result: dict) -> str:
    med, mem = result["latency"]["median_s"], result["memory"]
    rows = []
    for name in RUNNERS:
        b1, b32 = med[f"{name}|1x128"], med[f"{name}|32x128"]
        rows.append(f"| {name} | {b1 * 1e3:.1f} | {med['transformers|1x128'] / b1:.2f}x | {32 / b32:.0f} | "
                    f"{med['transformers|32x128'] / b32:.2f}x | {mem[name] / 2**20:.0f} | "
                    f"{result['latency']['diffs'][name]:.1e} |")
    best = min(RUNNERS[1:], key=lambda n: med[f"{n}|1x128"])
    lines = [f"`python benchmarks/bench_deploy.py --threads {result['threads']} --rounds {result['rounds']}`: "
             f"{result['machine']}. albert_tiny in the Google layout (`tiny_google`: 4 layers, H 312, E 128, as "
             "brightmart's tiny; random weights, which speed does not depend on), pooled output, "
             "all ids real (no padding). transformers runs `AlbertModel` eager in fp32 on the same weights; onnx and "
             "onnx-int8 are the files `albert-zh export` writes (fused for ONNX Runtime, int8: dynamic quantization). "
             "Latency is the median over all calls of interleaved rounds; peak RSS is a fresh process that "
             "loads the runner and runs both shapes.",
             "",
             "| runner | batch 1 x 128: median ms | vs transformers | batch 32 x 128: sequences/s | vs transformers "
             "| peak RSS MB | max abs diff vs transformers |",
             "|---|---:|---:|---:|---:|---:|---:|",
             *rows,
             "",
             f"Best backend at batch 1: **{best}**, {med[f'{best}|1x128'] * 1e3:.1f} ms per 128-token sequence on 2 CPU "
             f"threads with a {mem[best] / 2**20:.0f} MB process (the original project reports about 120 ms and 60 MB "
             "for albert_tiny on a Snapdragon 845 phone through TFLite; the RSS here includes the Python runtime and "
             "the libraries, not only the model)."]
    if "agreement" in result:
        a = result["agreement"]
        lines += ["", f"int8 against fp32 ONNX on LCQMC dev ({a['pairs']:,} pairs, {result['agreement_model']}): same "
                      f"label on **{a['agree']:.2%}** of pairs; accuracy fp32 {a['accuracy_fp32']:.2%}, "
                      f"int8 {a['accuracy_int8']:.2%}."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agreement-model", help="a fine-tuned LCQMC model directory for the int8 agreement check")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()

    import torch

    from albert_zh.model import AlbertConfig, AlbertModel

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        # Google layout, so transformers loads the very same directory
        AlbertModel(AlbertConfig.preset("tiny_google")).save_pretrained(model_dir)
        result = {"threads": args.threads, "rounds": args.rounds, "machine": machine(),
                  "latency": latencies(model_dir, args.threads, args.rounds, {SHAPES[0]: 40, SHAPES[1]: 4}),
                  "memory": peak_memory(model_dir, args.threads)}
    if args.agreement_model:
        result["agreement"] = agreement(Path(args.agreement_model), args.threads)
        result["agreement_model"] = Path(args.agreement_model).name
    body = section(result)
    print(body)
    if not args.no_write:
        write_section("Deployment", body)


if __name__ == "__main__":
    main()
