"""The ament linters' rules (flake8 with single quotes, pep257, line length 99) via ruff."""

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    # The venv's ruff first: `make test` runs the venv's python without activating the venv.
    beside = Path(sys.executable).parent / 'ruff'
    ruff = str(beside) if beside.is_file() else shutil.which('ruff')
    if ruff is None:
        pytest.skip('ruff is not installed')
    result = subprocess.run(
        [ruff, 'check', '--no-cache', str(REPO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
