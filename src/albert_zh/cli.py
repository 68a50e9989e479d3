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
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default: 2)")


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


def _task_arguments(p: argparse.ArgumentParser, custom_help: bool = True):
    from albert_zh.tasks import TASK_NAMES

    p.add_argument("--task", required=True, choices=TASK_NAMES, help="the task, which fixes the file format and labels")
    p.add_argument("--strict", action="store_true", help="stop at the first bad row instead of skipping and counting")
    g = p.add_argument_group("custom task (--task custom)")
    g.add_argument("--format", dest="file_format", choices=["csv", "tsv", "jsonl"],
                   help="file format (default: from the extension)")
    g.add_argument("--text-a-col", help="column (name, or 0-based number without --header) of the first text")
    g.add_argument("--text-b-col", help="column of the second text, for sentence pairs")
    g.add_argument("--label-col", help="column of the label")
    g.add_argument("--header", action="store_true", help="csv/tsv: the first line names the columns")


def _task_spec(args, path: str):
    from albert_zh.finetune import format_of
    from albert_zh.tasks import custom_task, get_task

    if args.task != "custom":
        return get_task(args.task)
    if args.text_a_col is None or args.label_col is None:
        raise ValueError("--task custom needs --text-a-col and --label-col")
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
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: CPU autocast (default fp32)")
    p.add_argument("--patience", type=int, help="stop after N epochs without a better dev accuracy")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    _task_arguments(p)


def _finetune(args):
    import json

    from albert_zh.finetune import FinetuneConfig, finetune

    fields = ("task", "model", "out", "data_dir", "train", "dev", "test", "epochs", "batch_size", "lr",
              "max_seq_length", "warmup_ratio", "dropout", "seed", "precision", "patience", "strict", "threads",
              "file_format", "text_a_col", "text_b_col", "label_col", "header")
    results = finetune(FinetuneConfig(**{f: getattr(args, f) for f in fields}))
    print(json.dumps({k: results[k] for k in ("task", "best_epoch", "dev", "test", "minutes") if k in results},
                     ensure_ascii=False))


def _evaluate_arguments(p: argparse.ArgumentParser):
    p.add_argument("--model", required=True, help="a fine-tuned model directory (e.g. OUT/best of finetune)")
    p.add_argument("--data", required=True, help="a labelled file in the task's format")
    p.add_argument("--max-seq-length", type=int, default=128, help="default: 128")
    _task_arguments(p)


def _evaluate(args):
    import json

    from albert_zh.finetune import evaluate

    print(json.dumps(evaluate(args.model, _task_spec(args, args.data), args.data, max_seq_length=args.max_seq_length,
                              strict=args.strict)))


def _predict_arguments(p: argparse.ArgumentParser):
    p.add_argument("--model", required=True, help="a fine-tuned model directory (e.g. OUT/best of finetune)")
    p.add_argument("--input", required=True, help="a file in the task's format (labels, if any, are ignored)")
    p.add_argument("--output", required=True, help="json lines: id, label, probabilities")
    p.add_argument("--max-seq-length", type=int, default=128, help="default: 128")
    _task_arguments(p)


def _predict(args):
    from albert_zh.finetune import predict

    n = predict(args.model, _task_spec(args, args.input), args.input, args.output,
                max_seq_length=args.max_seq_length, strict=args.strict)
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
    # verb: (add_arguments, run, one-line help)
    "demo": (_demo_arguments, _demo, "run the whole flow on the bundled Chinese sample (the README's main job)"),
    "convert": (_convert_arguments, _convert, "convert a released TF or HuggingFace ALBERT checkpoint (no TensorFlow needed)"),
    "presets": (_model_info_arguments, _model_info, "list the released model presets and their parameter counts"),
    "finetune": (_finetune_arguments, _finetune, "fine-tune a classifier: LCQMC, CLUE, ChnSentiCorp or a custom file"),
    "evaluate": (_evaluate_arguments, _evaluate, "score a fine-tuned model on a labelled task file (prints JSON)"),
    "predict": (_predict_arguments, _predict, "write a fine-tuned model's predictions for a task file (json lines)"),
    "clue": (_clue_arguments, _clue, "every CLUE task present: learning-rate search, best model, submission zip"),
    "download": (_download_arguments, _download, "fetch a CLUE task's data, checking its sha256"),
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
