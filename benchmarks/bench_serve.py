"""The HTTP service under load: 2,000 /similarity (or /ner) requests from 16 concurrent clients on 127.0.0.1.

    python benchmarks/bench_serve.py [--route similarity|ner] [--model DIR] [--backend onnx-int8] [--requests 2000]
                                     [--clients 16] [--rounds 3]

Two services run side by side, each in its own process (`albert-zh serve`): one micro-batching
(--max-batch 64 --max-wait-ms 5), one running every request alone (--max-batch 1). Each round
loads one and then the other with --requests requests of one sentence pair (/ner: one sentence)
each. Reports status codes, p50/p99 latency and throughput, and writes the "Service under load"
section of BENCHMARKS.md (with --route ner, "Service under load: /ner").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

# questions of 25-45 characters, so a pair is 60-90 tokens: the model, not HTTP, is the main cost
SENTENCES = ["我最近总是晚上睡不着觉，第二天上班没有精神，有什么好办法可以改善睡眠质量吗",
             "晚上失眠睡不好，白天工作很累，请问怎样才能让自己睡得更好一些",
             "从北京南站坐高铁去上海虹桥大概需要几个小时，票价一般是多少钱",
             "北京到上海的高铁要坐多久，二等座的票多少钱一张",
             "孩子三岁了，晚上突然发烧到三十九度，家里没有退烧药应该怎么办",
             "小孩半夜高烧不退，没有药的情况下可以先做些什么来降温",
             "这款手机的电池续航怎么样，玩游戏的时候会不会发热很严重",
             "我想学做西红柿鸡蛋汤，需要准备哪些材料，步骤复杂吗",
             "公司年底要组织团建活动，有没有适合三十个人一起玩的好地方推荐",
             "周末想带父母去郊区爬山，北京附近哪座山比较适合老年人"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(model: str, backend: str, max_batch: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "albert_zh.cli", "serve", model, "--port", str(port), "--backend", backend,
           "--max-batch", str(max_batch), "--max-wait-ms", "5", "--threads", str(threads)]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the service did not start within 120 s")


async def load(url: str, route: str, requests: int, clients: int) -> dict:
    import httpx

    rng = np.random.default_rng(0)
    bodies = [{"pairs": [[SENTENCES[i], SENTENCES[j]]]} if route == "similarity" else {"texts": [SENTENCES[i]]}
              for i, j in rng.integers(0, len(SENTENCES), (requests, 2))]
    latencies, statuses = [], []
    next_request = iter(range(requests))

    async def client(http: httpx.AsyncClient):
        for i in next_request:
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/{route}", json=bodies[i])
                statuses.append(response.status_code)
            except httpx.HTTPError:
                statuses.append(0)
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "latencies": latencies, "statuses": statuses}


def summary(rounds: list[dict], model_calls: int) -> dict:
    """All rounds of one service together; throughput is the median of the rounds'."""
    statuses = np.array([s for r in rounds for s in r["statuses"]])
    latencies = [t for r in rounds for t in r["latencies"]]
    per_round = [len(r["statuses"]) / r["seconds"] for r in rounds]
    return {"throughput": float(np.median(per_round)), "per_round": per_round,
            "p50_ms": float(np.percentile(latencies, 50) * 1e3), "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "ok": int((statuses == 200).sum()), "5xx": int((statuses >= 500).sum()),
            "failed": int((statuses == 0).sum()), "model_calls": model_calls}


def stop(process: subprocess.Popen):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def section(results: dict, args) -> str:
    rows = [f"| {name} | {r['ok']:,} | {r['5xx']} | {r['failed']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['throughput']:.0f} | {r['model_calls']:,} |" for name, r in results.items()]
    batched, alone = results["micro-batching (max batch 64, wait 5 ms)"], results["one request per model call"]
    ratios = ", ".join(f"{b / a:.2f}x" for b, a in zip(batched["per_round"], alone["per_round"], strict=True))
    return "\n".join([
        f"`python benchmarks/bench_serve.py --backend {args.backend} --requests {args.requests} --clients "
        f"{args.clients} --rounds {args.rounds} --route {args.route}`: {machine()}. `albert-zh serve` with a "
        f"fine-tuned-shape tiny {args.model_kind} ({args.model_note}), {args.threads} model threads; both services "
        f"run side by side in their own processes, and in each of {args.rounds} rounds {args.clients} clients on "
        f"127.0.0.1 send {args.requests:,} /{args.route} requests of one {args.item} each to one service, then to "
        "the other, as fast as answers come. Counts and percentiles are over all rounds; requests/s is the median "
        "round's.",
        "",
        "| service | 200 | 5xx | failed | p50 ms | p99 ms | requests/s | model calls |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Micro-batching serves **{batched['throughput'] / alone['throughput']:.2f}x** the requests per second of "
        f"one-request-per-call serving (per round: {ratios}), with {batched['model_calls']:,} model calls instead "
        f"of {alone['model_calls']:,}.",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=["similarity", "ner"], default="similarity")
    parser.add_argument("--model", help="a fine-tuned pair classifier, or entity tagger for --route ner "
                                        "(default: a random-weight tiny one)")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    args.model_kind, args.item = ("pair classifier", "pair") if args.route == "similarity" else ("entity tagger", "text")
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            import torch

            from albert_zh.model import AlbertConfig, AlbertForSequenceClassification, AlbertForTokenClassification
            from albert_zh.ner import tag_set
            from albert_zh.tasks import get_task

            torch.manual_seed(0)
            args.model = os.path.join(tmp, "tiny")
            if args.route == "similarity":
                AlbertForSequenceClassification(AlbertConfig.preset("tiny")).save_pretrained(args.model)
            else:
                tags = tag_set(get_task("cluener").labels)
                config = AlbertConfig.preset("tiny_google", num_labels=len(tags), id2label=dict(enumerate(tags)))
                AlbertForTokenClassification(config).save_pretrained(args.model)
            args.model_note = "random weights"
        else:
            args.model_note = Path(args.model).name
        modes = {"micro-batching (max batch 64, wait 5 ms)": 64, "one request per model call": 1}
        services = {name: start_service(args.model, args.backend, max_batch, args.threads)
                    for name, max_batch in modes.items()}
        try:
            rounds = {name: [] for name in modes}
            for round_ in range(args.rounds):  # interleaved, so a drift in machine speed hits both alike
                for name, (_, url) in services.items():
                    rounds[name].append(asyncio.run(load(url, args.route, args.requests, args.clients)))
                    print(f"round {round_ + 1}, {name}: {args.requests / rounds[name][-1]['seconds']:.0f} requests/s",
                          flush=True)
            import httpx

            results = {name: summary(rounds[name], httpx.get(url + "/health").json()["model_calls"])
                       for name, (_, url) in services.items()}
        finally:
            for process, _ in services.values():
                stop(process)
    body = section(results, args)
    print(body)
    if not args.no_write:
        write_section("Service under load" + ("" if args.route == "similarity" else ": /ner"), body)


if __name__ == "__main__":
    main()
