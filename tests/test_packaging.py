"""The project's lists of dependencies agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _names_and_bounds(specs):
    out = {}
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip())
        out[m.group(1).lower().replace("_", "-")] = m.group(2).replace(" ", "")
    return out


def test_environment_yml_lists_exactly_the_runtime_and_lab_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names_and_bounds(project["dependencies"] + project["optional-dependencies"]["lab"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    listed = _names_and_bounds(d for d in conda if not d.startswith(("python", "pip")))
    assert listed == wanted
    python = next(d for d in conda if d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
    assert "conda-forge" in env["channels"]


def test_environment_yml_installs_the_package_itself():
    """`conda env create -f environment.yml` in a checkout gives an environment that imports tcrp_lab."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections and [spec.split() for spec in pip_sections[0]] == [["-e", "."]]
    assert "pip" in env["dependencies"], "the pip section needs pip from conda-forge"
