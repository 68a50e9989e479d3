"""Shared by test_cli and test_readme: one run of `albert-zh demo`, as a newcomer starts."""

import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """(root, finished process): the demo run from ROOT, writing ROOT/runs/demo as `make demo` does."""
    root = tmp_path_factory.mktemp("newcomer")
    result = subprocess.run([sys.executable, "-m", "albert_zh.cli", "demo"], cwd=root, capture_output=True, text=True)
    return root, result
