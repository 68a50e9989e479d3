"""`albert-zh <command>`: a table from verb to function, each thin over the Python API.

Each command is a pair: `add_arguments(parser)` declares its flags, `run(args)` calls the library.
Errors a user can fix (bad files, bad flags) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _model_info_arguments(p: argparse.ArgumentParser):
    p.add_argument("--json", action="store_true", help="print one JSON object per preset")


def _model_info(args):
    import json

    from albert_zh.model import PRESETS, AlbertConfig, closed_form_parameter_count

    for name in PRESETS:
        config = AlbertConfig.preset(name)
        counts = closed_form_parameter_count(config)
        row = {"preset": name, "layout": config.embedding_layout, "ln_type": config.ln_type,
               "layers": config.num_hidden_layers, "hidden": config.hidden_size, "embedding": config.embedding_size,
               "heads": config.num_attention_heads, "ffn": config.intermediate_size,
               "encoder_params": counts["model"], "pretraining_params": counts["pretraining"]}
        print(json.dumps(row) if args.json else
              f"{name:12s} {row['layout']:10s} {row['ln_type']:6s} L={row['layers']:<3d} H={row['hidden']:<5d} "
              f"E={row['embedding']:<4d} encoder {row['encoder_params']:>12,d}  with heads {row['pretraining_params']:>12,d}")


def _demo_arguments(p: argparse.ArgumentParser):
    p.add_argument("--out", default="runs/demo", help="folder for everything the demo writes (default: runs/demo)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1; the sample's batches are small, and two threads on "
                        "cores that other work shares took 4x as long)")


def _demo(args):
    from albert_zh.demo import run_demo

    run_demo(args.out, threads=args.threads)


def _convert_arguments(p: argparse.ArgumentParser):
    p.add_argument("src", help="TF checkpoint (folder with `checkpoint`, or a *.ckpt prefix) in brightmart or Google "
                               "naming, a HuggingFace ALBERT folder, or a release's .zip/.tar.gz")
    p.add_argument("out", help="new model directory (config.json + model.safetensors + vocab.txt)")
    p.add_argument("--config", help="the release's albert_config*.json or a preset name "
                                    "(default: the albert_config*.json beside the checkpoint)")
    p.add_argument("--format", dest="fmt", default="auto", choices=["auto", "brightmart", "google", "hf"],
                   help="naming of the source (default: detected from the variable names)")
    p.add_argument("--to", default="ours", choices=["ours", "hf"],
                   help="'hf': also check that transformers' AlbertModel computes the same function, and "
                        "write a tokenizer_config.json naming BertTokenizer (default: ours)")


def _convert(args):
    from albert_zh.convert import convert

    print(convert(args.src, args.out, config=args.config, fmt=args.fmt, to=args.to))


def _prepare_arguments(p: argparse.ArgumentParser):
    from albert_zh.prepare import add_prepare_arguments

    add_prepare_arguments(p)


def _prepare(args):
    from albert_zh.prepare import prepare_config_from_args, prepare_data

    summary = prepare_data(prepare_config_from_args(args))
    print("\n".join(summary.lines()))


def _inspect_arguments(p: argparse.ArgumentParser):
    from albert_zh.prepare import add_inspect_arguments

    add_inspect_arguments(p)


def _inspect(args):
    from albert_zh.prepare import inspect_data

    for text in inspect_data(args.dir, num=args.num, as_json=args.json):
        print(text)


def _export_arguments(p: argparse.ArgumentParser):
    p.add_argument("model", help="a model directory (fine-tuned: logits + pooled output; else pooled output)")
    p.add_argument("--format", dest="fmt", default="onnx", choices=["onnx", "litert"],
                   help="onnx (default): any batch and length; litert: a .tflite for phones, one sequence of "
                        "--max-seq-length per call (needs pip install 'albert_zh[litert]')")
    p.add_argument("--out", help="output file (default: MODEL/model.onnx, MODEL/model.int8.onnx or MODEL/model.tflite, "
                                 "where `Classifier.load(..., backend=...)`, bench and serve look)")
    p.add_argument("--quantize", choices=["int8"], help="ONNX only: int8 dynamic quantization of the weights")
    p.add_argument("--portable", action="store_true",
                   help="ONNX only: standard ONNX ops, for runtimes other than onnxruntime (default: attention "
                        "and GELU fused into onnxruntime's faster ops)")
    p.add_argument("--max-seq-length", type=int, default=128,
                   help="ONNX: longest sample the export is checked on (the graph takes any length); "
                        "LiteRT: the model's fixed input length (default: 128)")


def _export(args):
    from pathlib import Path

    from albert_zh.backends import EXPORTED_FILES
    from albert_zh.export import export_litert, export_onnx

    if args.fmt == "litert":
        if args.quantize or args.portable:
            raise ValueError("--quantize and --portable apply to ONNX only")
        report = export_litert(args.model, args.out or Path(args.model) / EXPORTED_FILES["litert"], args.max_seq_length)
    else:
        out = args.out or Path(args.model) / EXPORTED_FILES["onnx-int8" if args.quantize else "onnx"]
        report = export_onnx(args.model, out, quantize=args.quantize, max_seq_length=args.max_seq_length,
                             portable=args.portable)
    print("\n".join(report.lines()))


def _bench_arguments(p: argparse.ArgumentParser):
    p.add_argument("model", help="a model directory")
    p.add_argument("--backend", default="torch", help="comma-separated: torch, onnx, onnx-int8, litert (default: torch; "
                                                        "exported files are written into MODEL first if missing)")
    p.add_argument("--seq-lens", default="32,64,128,256,512", help="sequence lengths (default: 32,64,128,256,512)")
    p.add_argument("--batch-sizes", default="1,8,32", help="batch sizes (default: 1,8,32)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="measuring time per shape (default: 2)")
    p.add_argument("--max-batch", action="store_true",
                   help="instead: the largest batch per sequence length within --memory-budget")
    p.add_argument("--memory-budget", default="8GB", help="peak RSS budget for --max-batch (default: 8GB)")


def _bench(args):
    from albert_zh.bench import BenchConfig, bench, max_batch_sizes, parse_size, table

    config = BenchConfig(model=args.model, backends=tuple(args.backend.split(",")),
                         seq_lens=_ints(args.seq_lens, "--seq-lens"), batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
                         threads=args.threads, seconds=args.seconds)
    if args.max_batch:
        print(f"| seq len | max batch within {args.memory_budget} ({config.backends[0]}) |\n|---:|---:|")
        for row in max_batch_sizes(config, parse_size(args.memory_budget)):
            print(f"| {row['seq_len']} | {row['max_batch']} |")
    else:
        print(table(bench(config)))


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give comma-separated integers") from None


def _serve_arguments(p: argparse.ArgumentParser):
    from albert_zh.serve import ServeConfig

    d = ServeConfig(model="-")
    p.add_argument("model", help="a fine-tuned model directory (an encoder alone serves /embed only)")
    p.add_argument("--host", default=d.host, help=f"(default: {d.host})")
    p.add_argument("--port", type=int, default=d.port, help=f"(default: {d.port})")
    p.add_argument("--backend", default=d.backend, choices=["torch", "onnx", "onnx-int8", "litert"],
                   help=f"(default: {d.backend}; exported files are written into MODEL first if missing)")
    p.add_argument("--max-batch", type=int, default=d.max_batch,
                   help=f"texts per model call, gathered across requests (default: {d.max_batch})")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help=f"how long a request waits for others to batch with (default: {d.max_wait_ms})")
    p.add_argument("--max-items", type=int, default=d.max_items, help=f"texts or pairs per request (default: {d.max_items})")
    p.add_argument("--max-chars", type=int, default=d.max_chars, help=f"characters per text (default: {d.max_chars})")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                   help=f"request body size limit (default: {d.max_body_bytes})")
    p.add_argument("--max-seq-length", type=int, default=d.max_seq_length,
                   help=f"tokens per input, longer ones truncated (default: {d.max_seq_length})")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: the runtime's choice)")


def _serve(args):
    from dataclasses import fields

    from albert_zh.serve import ServeConfig, serve

    serve(ServeConfig(**{f.name: getattr(args, f.name) for f in fields(ServeConfig)}))


def _pretrain_arguments(p: argparse.ArgumentParser):
    from albert_zh.pretrain import PretrainConfig

    d = PretrainConfig(data="-", out="-")
    p.add_argument("--data", required=True, help="a folder written by prepare-data (training shards)")
    p.add_argument("--out", required=True, metavar="RUN_DIR",
                   help="run folder: metrics.jsonl, checkpoints/, model/ (the final export), tensorboard/")
    p.add_argument("--config", help="model preset (tiny, tiny_preln, small, tiny_google, base, large, xlarge, xxlarge; "
                                    "albert-zh presets lists them) or config JSON "
                                    "(default: tiny_google, which learns sooner from scratch; with --init-from, that model's)")
    p.add_argument("--init-from", metavar="MODEL", help="start from this model directory (ours, converted or "
                                                        "HuggingFace) instead of random weights: domain pretraining")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"sequences per process and micro-step (default: {d.batch_size}); the effective batch is "
                        "batch size x grad accum x processes")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum, help="micro-steps per optimizer step (default: 1)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: 7e-4, for AdamW's part of muon and for "
                                            "AdamW, where alone it learned sooner than 1e-3, 1.5e-3 and 2e-3; "
                                            "1.76e-3 with LAMB, the seed's for its batch of 4096)")
    p.add_argument("--masked-lm-prob", type=float,
                   help="fraction of the training tokens masked (default: 0.4 where the data's masks are dynamic: "
                        "with --init local it reached 2x the no-context level on a memorised set sooner than 0.25, "
                        "which learned sooner than 0.15; static masks keep the rate prepare-data gave them); "
                        "--eval-data keep their own")
    p.add_argument("--ngram", type=int,
                   help="longest masked span, in words, of dynamic training masks (default: the data's, "
                        "prepare-data's --ngram, 3 as Google's; 1 = single words: ahead on held-out text at 700 "
                        "steps and ahead or level in 30 minutes, but fine-tuning from those starts gained less on "
                        "LCQMC, EVALUATION.md); static masks keep prepare-data's, --eval-data their own")
    p.add_argument("--mlm-vocab", choices=["data", "all"],
                   help="'data': the masked LM's loss scores only the ids the training data holds (8,459 of "
                        "21,128 on the shared corpora: in 30 CPU minutes 1.15x to 1.25x the steps and ahead on "
                        "held-out text with two seeds); from scratch, the exported model gives the ids left out an "
                        "output bias 5 below the lowest of the others. 'all': every id (default: data from scratch, all "
                        "with --init-from, whose model has trained rows for every id)")
    p.add_argument("--group-by-length", action=argparse.BooleanOptionalAction, default=d.group_by_length,
                   help="batch instances of like lengths together (sorted within pools of 64 batches, the "
                        "batches then shuffled): less padding where documents are short, no change where every "
                        "instance is full (default: off)")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps, then polynomial decay to 0 at "
                                                    "--max-steps (default: 10%% of --max-steps); with "
                                                    "--max-minutes, whichever limit is nearer sets the pace")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=f"optimizer steps (default: {d.max_steps})")
    p.add_argument("--max-minutes", type=float, help="stop earlier once the run (resumes included) has taken this "
                                                     "much wall time; the learning rate warms up over its first "
                                                     "tenth and decays to 0 at its end, and the model is saved and "
                                                     "exported as at the end")
    p.add_argument("--optimizer", choices=["muon", "adamw", "lamb"],
                   help="'muon': Muon (momentum, each update orthogonalised) for the layers' weight matrices and "
                        "AdamW for the rest: further than AdamW alone on held-out text at 700 steps, in 12 and in "
                        "30 CPU minutes (held-out CLUE 2.00x on average over three runs), fine-tuning from its "
                        "starts level with AdamW's over 8 seeds (EVALUATION.md); 'adamw'; 'lamb' (per-tensor trust "
                        "ratio, for batches in the thousands). LayerNorm and biases get no weight decay, nor do "
                        "Muon's matrices (default: muon from scratch, adamw with --init-from: Muon was measured "
                        "from scratch only)")
    p.add_argument("--muon-lr", type=float, default=d.muon_lr,
                   help=f"Muon's peak rate for the layers' weight matrices (default: {d.muon_lr}; --lr sets AdamW's)")
    p.add_argument("--init", choices=["local", "standard"], default=d.init,
                   help="from scratch: 'local' starts each attention head on a neighbouring token and the MLM "
                        "head's gain at 8, which gets the masked LM off its unigram plateau in a few hundred "
                        "steps; 'standard' is the TF code's random init (default: local; ignored with --init-from)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"(default: {d.weight_decay})")
    p.add_argument("--sop-weight", type=float, default=d.sop_weight,
                   help="weight of the sentence-order loss in the total (default: 1, the seed's, which with "
                        "--init local learned sentence order in 30 CPU minutes; 3 and 10 held the masked LM back)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=d.precision,
                   help="fp32; bf16 autocast (CPU or GPU); fp16 autocast with loss scaling (GPU) (default: fp32)")
    p.add_argument("--save-every", type=int, default=d.save_every,
                   help=f"write a checkpoint every N steps (default: {d.save_every})")
    p.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                   help=f"newest checkpoints kept; 0: none written, the run cannot be resumed "
                        f"(default: {d.keep_checkpoints})")
    p.add_argument("--eval-data", help="held-out folder written by prepare-data: MLM and SOP accuracy and loss, "
                        "and MLM accuracy where the input was changed (what only context can tell)")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help=f"evaluate every N steps, and at the end (default: {d.eval_every})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"weights, data order and masking (default: {d.seed})")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its newest complete checkpoint")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model and its losses for training, after a compilation of about a minute: "
                        "with --precision bf16 2x faster steps on a 2-core CPU, in fp32 1.1x to 1.3x "
                        "(benchmarks/bench_pretrain.py)")
    p.add_argument("--loader-workers", type=int,
                   help="processes that mask and collate the coming batches while the model trains (default: "
                        "4 on a GPU; 0 on a CPU, where they would take cores from the step)")
    p.epilog = ("Several processes: the same command under torchrun (--nproc_per_node N; add --nnodes, "
                "--node_rank and --rdzv_endpoint for several machines); nccl on GPUs, gloo on CPU. "
                "TensorBoard scalars are written when the tensorboard package is installed.")


def _pretrain(args):
    from dataclasses import fields

    from albert_zh.pretrain import PretrainConfig, pretrain

    names = {f.name for f in fields(PretrainConfig)}
    print(pretrain(PretrainConfig(**{k: v for k, v in vars(args).items() if k in names})))


def _plot_arguments(p: argparse.ArgumentParser):
    p.add_argument("run_dir", metavar="RUN_DIR", help="a pretraining run folder (with metrics.jsonl)")
    p.add_argument("--out", help="PNG to write (default: RUN_DIR/curves.png)")


def _plot(args):
    from albert_zh.pretrain import plot_run

    print(plot_run(args.run_dir, args.out))
def _task_arguments(p: argparse.ArgumentParser, fine_tuned: bool = False):
    """fine_tuned: the command reads a fine-tuned model, which recorded its task (MODEL/task.json)."""
    from albert_zh.tasks import TASK_NAMES

    p.add_argument("--task", required=not fine_tuned, choices=TASK_NAMES,
                   help="the task, which fixes the file format and labels" +
                        (" (default: the one the model was fine-tuned on, from MODEL/task.json)" if fine_tuned else ""))
    p.add_argument("--strict", action="store_true", help="stop at the first bad row instead of skipping and counting")
    p.add_argument("--stride", type=int, help="entity tasks: pieces shared by the overlapping windows of a text "
                                              "longer than --max-seq-length (default: half a window)")
    g = p.add_argument_group("custom task (--task custom) and your own entity files (--task ner)")
    g.add_argument("--format", dest="file_format", choices=["csv", "tsv", "jsonl", "conll", "spans"],
                   help="custom: csv, tsv or jsonl; ner: conll (token<TAB>tag, BIO or BIOES, blank line between "
                        "sentences) or spans (json lines {text, entities: [{start, end, type}]}, end exclusive). "
                        "Default: from the extension")
    g.add_argument("--text-a-col", help="column (name, or 0-based number without --header) of the first text")
    g.add_argument("--text-b-col", help="column of the second text, for sentence pairs")
    g.add_argument("--label-col", help="column of the label" + (" (predict: not needed)" if fine_tuned else ""))
    g.add_argument("--header", action="store_true", help="csv/tsv: the first line names the columns")


def _task_spec(args, path: str, labelled: bool = True):
    """The task as given by the flags, else as the fine-tuned model recorded it. labelled: the file
    must have labels (evaluate), or may lack them (predict)."""
    from albert_zh.finetune import format_of, ner_format_of
    from albert_zh.tasks import custom_task, get_task, load_task, ner_task

    if args.task is None:
        return load_task(args.model)
    if args.task == "ner":
        return ner_task(args.file_format or ner_format_of(path))
    if args.task != "custom":
        return get_task(args.task)
    if args.text_a_col is None or (labelled and args.label_col is None):
        raise ValueError("--task custom needs --text-a-col" + (" and --label-col" if labelled else ""))
    return custom_task(args.file_format or format_of(path), args.text_a_col, args.text_b_col, args.label_col,
                       args.header)


def _finetune_arguments(p: argparse.ArgumentParser):
    p.add_argument("--model", required=True, help="a preset name (random init: the no-pretraining baseline), "
                                                  "a save_pretrained directory or a converted release")
    p.add_argument("--out", required=True, help="folder for best/ (the best checkpoint), results.json and curve.png")
    p.add_argument("--data-dir", help="a task folder with the official file names (e.g. train.txt dev.txt test.txt)")
    p.add_argument("--train", help="training file (instead of --data-dir)")
    p.add_argument("--dev", help="dev file: scored every epoch, picks the best checkpoint")
    p.add_argument("--test", help="optional test file: scored (labelled) or predicted (CLUE) with the best checkpoint")
    p.add_argument("--epochs", type=int, default=5, help="default: 5")
    p.add_argument("--batch-size", type=int, default=64, help="default: 64")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default: 1e-4)")
    p.add_argument("--max-seq-length", type=int, default=128, help="tokens per example, [CLS]/[SEP] included (128)")
    p.add_argument("--warmup-ratio", type=float, default=0.1, help="share of steps with a rising learning rate (0.1)")
    p.add_argument("--dropout", type=float, help="classifier dropout (default: the model's)")
    p.add_argument("--seed", type=int, default=42, help="default: 42")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast on the CPU, or on the GPU where there is one (default fp32)")
    p.add_argument("--patience", type=int, help="stop after N epochs without a better dev accuracy (entity F1)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--crf", action="store_true", help="entity tasks: a CRF over the tag scores")
    _task_arguments(p)


def _finetune(args):
    import json

    from albert_zh.finetune import FinetuneConfig, finetune

    fields = ("task", "model", "out", "data_dir", "train", "dev", "test", "epochs", "batch_size", "lr",
              "max_seq_length", "warmup_ratio", "dropout", "seed", "precision", "patience", "strict", "threads",
              "crf", "stride", "file_format", "text_a_col", "text_b_col", "label_col", "header")
    results = finetune(FinetuneConfig(**{f: getattr(args, f) for f in fields}))
    print(json.dumps({k: results[k] for k in ("task", "best_epoch", "dev", "test", "minutes") if k in results},
                     ensure_ascii=False))


def _evaluate_arguments(p: argparse.ArgumentParser):
    p.add_argument("--model", required=True, help="a fine-tuned model directory (e.g. OUT/best of finetune)")
    p.add_argument("--data", required=True, help="a labelled file in the task's format")
    p.add_argument("--max-seq-length", type=int, default=128, help="default: 128")
    _task_arguments(p, fine_tuned=True)


def _evaluate(args):
    import json

    from albert_zh.finetune import evaluate
    from albert_zh.ner import entity_table

    scores = evaluate(args.model, _task_spec(args, args.data), args.data, max_seq_length=args.max_seq_length,
                      stride=args.stride, strict=args.strict)
    print(json.dumps(scores, ensure_ascii=False))
    if "per_type" in scores:  # entities: the table for people, on stderr so stdout stays one JSON object
        print(entity_table(scores), file=sys.stderr)


def _predict_arguments(p: argparse.ArgumentParser):
    p.add_argument("--model", required=True, help="a fine-tuned model directory (e.g. OUT/best of finetune)")
    p.add_argument("--input", required=True, help="a file in the task's format (labels, if any, are ignored)")
    p.add_argument("--output", required=True,
                   help="json lines: id, label, probabilities; for entity tasks id, text, entities [{type, start, "
                        "end, text}] (end exclusive). The id is the input's own where its format has one (CLUE's "
                        "\"id\"), else the 0-based row (a header line not counted)")
    p.add_argument("--max-seq-length", type=int, default=128, help="default: 128")
    _task_arguments(p, fine_tuned=True)


def _predict(args):
    from albert_zh.finetune import predict

    n = predict(args.model, _task_spec(args, args.input, labelled=False), args.input, args.output,
                max_seq_length=args.max_seq_length, stride=args.stride, strict=args.strict)
    print(f"{n} predictions written to {args.output}")


def _clue_arguments(p: argparse.ArgumentParser):
    from albert_zh.finetune import CLUE_TASKS

    p.add_argument("--data-dir", required=True, help="folder with one sub-folder per task (afqmc/, tnews/, ...)")
    p.add_argument("--model", required=True, help="preset name or model directory to start every task from")
    p.add_argument("--out", required=True, help="runs, submission/*.json, clue_submission.zip, clue_results.md")
    p.add_argument("--lrs", default="2e-5,6e-5,1e-4", help="learning rates to try, comma-separated")
    p.add_argument("--tasks", default=",".join(CLUE_TASKS), help="comma-separated (default: all present)")
    p.add_argument("--epochs", type=int, default=3, help="default: 3")
    p.add_argument("--batch-size", type=int, default=64, help="default: 64")
    p.add_argument("--max-seq-length", type=int, default=128, help="default: 128")
    p.add_argument("--seed", type=int, default=42, help="default: 42")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--patience", type=int, help="early stopping, as in finetune")
    p.add_argument("--threads", type=int, help="CPU threads for torch")


def _clue(args):
    from albert_zh.finetune import ClueConfig, run_clue

    try:
        lrs = tuple(float(x) for x in args.lrs.split(","))
    except ValueError:
        raise ValueError(f"--lrs must be comma-separated numbers, got {args.lrs!r}") from None
    print(run_clue(ClueConfig(args.data_dir, args.model, args.out, lrs, tuple(args.tasks.split(",")), args.epochs,
                              args.batch_size, args.max_seq_length, args.seed, args.precision, args.patience,
                              args.threads)))


def _download_arguments(p: argparse.ArgumentParser):
    p.add_argument("task", help="a CLUE task (afqmc, tnews, iflytek, cmnli, ocnli, cluewsc2020, csl, xnli)")
    p.add_argument("--to", required=True, help="data folder; the task lands in TO/TASK")
    p.add_argument("--url", help="fetch from here instead of CLUE's public bucket")
    p.add_argument("--sha256", help="expected sha256 of the zip (overrides the recorded one)")


def _download(args):
    from albert_zh.finetune import download

    print(download(args.task, args.to, url=args.url, sha256=args.sha256))


COMMANDS = {
    # verb: (add_arguments, run, one-line help), in the order of the data flow
    "demo": (_demo_arguments, _demo, "run the whole flow on the bundled Chinese sample (the README's main job)"),
    "presets": (_model_info_arguments, _model_info, "list the released model presets and their parameter counts"),
    "convert": (_convert_arguments, _convert, "convert a released TF or HuggingFace ALBERT checkpoint (no TensorFlow needed)"),
    "prepare-data": (_prepare_arguments, _prepare, "turn Chinese text into masked-LM + sentence-order pretraining shards"),
    "inspect-data": (_inspect_arguments, _inspect, "decode instances of a prepare-data folder (text or JSON lines)"),
    "pretrain": (_pretrain_arguments, _pretrain, "pretrain (MLM + SOP) on prepared data; resumable, torchrun-ready"),
    "plot": (_plot_arguments, _plot, "draw a pretraining run's loss, accuracy and learning-rate curves (PNG)"),
    "finetune": (_finetune_arguments, _finetune, "fine-tune a classifier or an entity tagger (CLUE, CLUENER, MSRA, ...)"),
    "evaluate": (_evaluate_arguments, _evaluate, "score a fine-tuned model on a labelled task file (prints JSON)"),
    "predict": (_predict_arguments, _predict, "write a fine-tuned model's predictions for a task file (json lines)"),
    "clue": (_clue_arguments, _clue, "every CLUE task present: learning-rate search, best model, submission zip"),
    "download": (_download_arguments, _download, "fetch a CLUE task's data, checking its sha256"),
    "export": (_export_arguments, _export, "export a model directory to ONNX (fp32 or int8), checked against PyTorch"),
    "bench": (_bench_arguments, _bench, "latency, throughput and peak memory per backend; max batch for a memory budget"),
    "serve": (_serve_arguments, _serve, "HTTP service: /similarity, /classify, /embed, micro-batched across clients"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="albert-zh",
        description="ALBERT for Chinese: build, pretrain, fine-tune, convert and ship small Chinese models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (add_arguments, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"albert-zh {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"albert-zh {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
