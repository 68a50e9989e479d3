"""The CLI: every verb is listed and documented, the main job runs, errors are one clear line."""

import json
import subprocess
import sys

import pytest

from albert_zh.cli import COMMANDS, build_parser, main
from albert_zh.model import PRESETS


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "albert_zh.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command():
    help_text = build_parser().format_help()
    for verb in COMMANDS:
        assert verb in help_text


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_every_command_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert COMMANDS[verb][2] in capsys.readouterr().out


def test_demo_runs_the_main_job_and_names_the_files_to_open(demo_run):
    root, result = demo_run
    assert result.returncode == 0, result.stderr
    for stage in ("prepare-data", "pretrain", "finetune", "export", "similarity query"):
        assert stage in result.stdout
    output = result.stdout + result.stderr
    assert len(output.encode()) < 4096 and "\r" not in output  # a log file of it stays readable
    named = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith(("model: ", "curves: "))]
    named += [line.split(": ONNX ")[0] for line in result.stdout.splitlines() if ".onnx: ONNX " in line]
    demo = "runs/demo"
    assert sorted(named) == sorted([f"{demo}/pretrain/model", f"{demo}/pretrain/curves.png", f"{demo}/finetune/best",
                                    f"{demo}/finetune/curve.png", f"{demo}/finetune/best/model.onnx",
                                    f"{demo}/finetune/best/model.int8.onnx"])
    assert all((root / path).exists() for path in named)
    assert (root / demo / "pretrain" / "model" / "model.safetensors").is_file()
    scores = [float(line.split()[0]) for line in result.stdout.splitlines() if "我喜欢妈妈做的汤 / " in line]
    assert len(scores) == 1 and 0 <= scores[0] <= 1


def test_the_demo_keeps_what_it_writes_small(demo_run):
    root, result = demo_run
    assert result.returncode == 0, result.stderr
    files = [p for p in (root / "runs" / "demo").rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".pt"]  # no pretraining checkpoints: a newcomer never resumes
    assert sum(p.stat().st_size for p in files) < 64 * 2**20  # four copies of a 16 MB model, at most


def test_the_demo_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("a user's file")
    refused = run_cli("demo", "--out", str(tmp_path / "other"))
    assert refused.returncode == 2 and "not an earlier demo" in refused.stderr
    assert (tmp_path / "other" / "notes.txt").exists()


def test_presets_json_lists_all_presets(capsys):
    assert main(["presets", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["preset"] for line in lines] == list(PRESETS)


def test_user_errors_are_one_line_with_status_2(tmp_path, capsys):
    (tmp_path / "demo").write_text("a file where the demo wants a folder")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("albert-zh demo: error:") and "Traceback" not in err


def test_prepare_data_and_inspect_data(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("今天天气很好。\n我们去公园散步。\n公园里有很多花。\n\n他喜欢读书。\n书店在学校旁边。\n周末人很多。\n",
                      encoding="utf-8")
    out = tmp_path / "data"
    result = run_cli("prepare-data", str(corpus), "--out", str(out), "--max-seq-length", "32", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "2 documents, 6 sentences" in result.stdout and "instances in 1 shard(s)" in result.stdout
    shown = run_cli("inspect-data", str(out), "--num", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    instance = json.loads(shown.stdout)
    assert instance["tokens"][0] == "[CLS]" and instance["sop_label"] in (0, 1)
    again = run_cli("prepare-data", str(corpus), "--out", str(out), "--max-seq-length", "64", "--workers", "1")
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("verb", ["pretrain", "serve"])
def test_cli_works_without_the_deploy_extra(verb):
    # a training machine may lack FastAPI (the deploy extra): only `serve` itself needs it
    code = ("import sys; sys.modules['fastapi'] = sys.modules['pydantic'] = None\n"
            "from albert_zh.cli import main\n"
            f"main(['{verb}', '--help'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: albert-zh " + verb in result.stdout
