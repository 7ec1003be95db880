"""The README's Python example runs as written and prints what its comment says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_and_prints_what_it_promises():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    promised = re.search(r"# (\[\('alice'.*\])", code).group(1)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == promised
