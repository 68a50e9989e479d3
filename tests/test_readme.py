"""The README's shell commands run as written, where a newcomer runs them: after `make demo`, from
the repository root. Each is run in order in a folder holding the demo's output (the demo_run
fixture) and a link to src/; the service is started on 127.0.0.1 and the curl commands ask it."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Commands a newcomer runs but this test does not, and why.
NOT_RUN = {
    "make ": "the set-up, the demo (the demo_run fixture runs it) and this test suite",
    "python3 -m venv": "set-up",
    "pip install": "set-up, needs the package registries",
    "albert-zh convert": "needs a released checkpoint downloaded from the web",
}
SERVICE = "albert-zh serve"


def readme_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks: continued lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"(^|\s+)#.*$", "", line).strip()  # the README's comments: no '#' inside quotes
            if command:
                commands.append(command)
    return commands


def test_commands_are_extracted_whole():
    text = "```bash\nmake demo   # note\n# a comment\nalbert-zh a \\\n    --b c\n```\n```python\nx = 1\n```\n"
    assert readme_commands(text) == ["make demo", "albert-zh a      --b c"]


def test_the_readme_is_a_guide_with_a_page_per_stage():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for page in ("data", "pretraining", "fine-tuning", "conversion", "deployment"):
        assert (REPO / "docs" / f"{page}.md").is_file() and f"(docs/{page}.md)" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(port: int, service: subprocess.Popen, seconds: float = 900):
    """Until /health answers; `seconds` only guards against a hang (a starved machine is slow, not broken)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert service.poll() is None, service.stderr.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the service did not answer on port {port} within {seconds} s")


def test_every_readme_command_runs_as_written(demo_run):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the README's service examples need it")
    root, demo = demo_run
    assert demo.returncode == 0, demo.stderr
    if not (root / "src").exists():
        (root / "src").symlink_to(REPO / "src")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    port = free_port()  # the README's 8000 may be taken on a shared machine
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    ran, service = [], None
    try:
        for command in commands:
            if command.startswith(tuple(NOT_RUN)):
                continue
            if command.startswith(SERVICE):
                service = subprocess.Popen([*shlex.split(command), "--port", str(port)], cwd=root, env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                wait_until_serving(port, service)
                ran.append(command)
                continue
            asked = command.replace("localhost:8000", f"localhost:{port}")
            result = subprocess.run(asked, shell=True, cwd=root, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"{command}\n{result.stdout[-1000:]}\n{result.stderr[-2000:]}"
            if command.startswith("curl"):
                answer = json.loads(result.stdout)
                assert "detail" not in answer, f"{command}\n{answer}"  # FastAPI's error body
            ran.append(command)
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=30)
    stages = ("prepare-data", "pretrain", "finetune", "evaluate", "predict", "export", "bench", "serve", "curl")
    assert all(any(stage in command for command in ran) for stage in stages), ran
    assert (root / "runs" / "tour" / "lcqmc" / "best" / "model.int8.onnx").is_file()
