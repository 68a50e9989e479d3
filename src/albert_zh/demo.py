"""The README's main job: the whole flow on the bundled sample, printing what each step did.

It grows with the project. Today: build albert_tiny from the bundled release config and
vocabulary, tokenize a sentence pair, run the pretraining model on it, save the model directory
and load it back.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from albert_zh.model import (
    AlbertConfig,
    AlbertForPreTraining,
    closed_form_parameter_count,
)
from albert_zh.tokenizer import load_tokenizer

PAIR = ("我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝")


def _step(title: str):
    print(f"\n== {title}")


def run_demo(out: str | Path, threads: int = 2):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    started = time.perf_counter()

    _step("1. model: albert_tiny from the bundled brightmart release config")
    config = AlbertConfig.preset("tiny")
    model = AlbertForPreTraining(config).eval()
    counts = closed_form_parameter_count(config)
    print(f"layout {config.embedding_layout}, {config.ln_type}, {config.num_hidden_layers} layers sharing "
          f"'{config.sharing}', H={config.hidden_size}, E={config.embedding_size}, heads={config.num_attention_heads}")
    embeddings = sum(p.numel() for p in model.albert.embeddings.parameters())
    print(f"parameters: encoder {model.albert.num_parameters():,} (closed form {counts['model']:,}; "
          f"embeddings {embeddings:,}), with the MLM and SOP heads {model.num_parameters():,}")
    unshared = counts["model"] + (config.num_hidden_layers - 1) * counts["layers"]
    print(f"without cross-layer sharing the encoder would store {unshared:,}")

    _step("2. tokenizer: bundled 21,128-token Chinese vocabulary")
    tok = load_tokenizer(None)
    enc = tok(*PAIR, max_length=128)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    print(f"pair: {PAIR[0]} / {PAIR[1]}")
    print(f"tokens ({len(tokens)}): {' '.join(tokens)}")
    print(f"token types: {''.join(map(str, enc['token_type_ids']))}")

    _step("3. forward pass (random weights: the numbers show shapes, not knowledge)")
    ids = torch.tensor([enc["input_ids"]])
    types = torch.tensor([enc["token_type_ids"]])
    mask = torch.tensor([enc["attention_mask"]])
    position = tokens.index("汤")
    masked = ids.clone()
    masked[0, position] = tok.mask_id
    with torch.inference_mode():
        t = time.perf_counter()
        sequence_output, pooled_output = model.albert(masked, mask, types)
        result = model(masked, mask, types, masked_positions=torch.tensor([[position]]))
        ms = (time.perf_counter() - t) * 1e3
    top = result.mlm_logits[0, 0].topk(5).indices.tolist()
    print(f"sequence output {tuple(sequence_output.shape)}, pooled output {tuple(pooled_output.shape)} "
          f"(|pooled| = {pooled_output.norm():.3f}), {ms:.1f} ms")
    print(f"MLM at [MASK] (position {position}, was 汤): top 5 {tok.convert_ids_to_tokens(top)}")
    print(f"sentence-order probabilities (in order, swapped): {[round(p, 3) for p in result.sop_logits.softmax(-1)[0].tolist()]}")

    _step(f"4. checkpoint: save_pretrained -> {out / 'albert_tiny'} and load back")
    model.save_pretrained(out / "albert_tiny")
    reloaded = AlbertForPreTraining.from_pretrained(out / "albert_tiny").eval()
    with torch.inference_mode():
        again = reloaded(masked, mask, types, masked_positions=torch.tensor([[position]]))
        same = torch.equal(again.mlm_logits, result.mlm_logits)
    for f in sorted((out / "albert_tiny").iterdir()):
        print(f"  {f.name:20s} {f.stat().st_size / 2**20:7.2f} MB")
    print(f"reloaded model gives identical outputs: {same}")
    print(f"\ndone in {time.perf_counter() - started:.1f} s")
