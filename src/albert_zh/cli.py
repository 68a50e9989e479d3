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


COMMANDS = {
    # verb: (add_arguments, run, one-line help)
    "demo": (_demo_arguments, _demo, "run the whole flow on the bundled Chinese sample (the README's main job)"),
    "convert": (_convert_arguments, _convert, "convert a released TF or HuggingFace ALBERT checkpoint (no TensorFlow needed)"),
    "prepare-data": (_prepare_arguments, _prepare, "turn Chinese text into masked-LM + sentence-order pretraining shards"),
    "inspect-data": (_inspect_arguments, _inspect, "decode instances of a prepare-data folder (text or JSON lines)"),
    "presets": (_model_info_arguments, _model_info, "list the released model presets and their parameter counts"),
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
