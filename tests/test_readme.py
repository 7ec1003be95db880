"""The README and the glossary: the Python example runs, the lesson table matches the lessons, links work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GLOSSARY = ROOT / "docs" / "GLOSSARY.md"
SOLUTIONS = ROOT / "notebooks" / "solutions"
LESSONS = sorted(path.stem for path in SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
TIME = re.compile(r"\*\*Prerequisites:\*\*.+ · \*\*Time:\*\* (about \d+ minutes)\s*$", re.MULTILINE)
# Every term the lessons rely on (issue 13); each gets a `## Term` heading.
TERMS = ["AAD", "AEAD", "Amplification", "CFB", "Datagram", "Fingerprint", "Forward secrecy", "Frame", "GCM", "Go-back-N",
         "Handshake", "Head-of-line blocking", "IV", "KDF", "Keep-alive", "Keystream", "MTU", "NAT", "Nonce",
         "OCB", "Path validation", "Premaster", "Replay window", "RTO", "RTT", "Salt", "scrypt",
         "Selective repeat", "Seq", "Session keys", "Token"]


def github_anchors(markdown: Path) -> set[str]:
    """The anchors GitHub gives a file's headings: lowercase, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in markdown.read_text(encoding="utf-8").splitlines() if re.match(r"#{1,6} ", line)}


def broken_links(text: str, folder: Path, own: Path | None = None) -> list[str]:
    """Relative markdown links in ``text`` (written in ``folder``) to a missing file or heading."""
    broken = []
    for target in re.findall(r"\]\(\s*<?([^)\s>]+)", text):
        if re.match(r"[a-z]+:", target):
            continue   # a web address
        file, _, anchor = target.partition("#")
        linked = (folder / file).resolve() if file else own
        if linked is None:
            continue
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in github_anchors(linked):
            broken.append(f"{target} (no such heading)")
    return broken


def lesson_table() -> dict[str, tuple[str, str]]:
    """README's lesson table: {lesson: (link target, time)}."""
    section = README.read_text(encoding="utf-8").split("\n## The lessons\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| \[`(\d\d_\w+)`\]\(([^)]+)\) \| ([^|]+) \|", section, re.MULTILINE)
    return {name: (link, time.strip()) for name, link, time in rows}


def lesson_time(name: str) -> str | None:
    for cell in nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4).cells:
        if cell.cell_type == "markdown" and (found := TIME.search(cell.source)):
            return found.group(1)
    return None


def test_the_readme_example_runs_and_prints_what_it_promises():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    promised = re.search(r"# (\[\('alice'.*\])", code).group(1)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == promised


def test_the_lesson_table_lists_every_lesson_linked_to_its_student_edition():
    table = lesson_table()
    assert sorted(table) == LESSONS
    assert all(link == f"notebooks/{name}.ipynb" for name, (link, _) in table.items())


@pytest.mark.parametrize("name", LESSONS)
def test_the_readme_gives_each_lesson_the_time_its_first_cell_states(name):
    stated = lesson_time(name)
    assert stated, f"{name} has no '**Prerequisites:** ... · **Time:** about N minutes' line"
    assert lesson_table()[name][1] == stated


def test_the_readmes_relative_links_reach_their_files_and_headings():
    assert broken_links(README.read_text(encoding="utf-8"), ROOT, own=README) == []


def test_the_glossary_has_every_term_once_in_its_own_heading():
    headings = re.findall(r"^## (.+)$", GLOSSARY.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(headings, key=str.lower) == sorted(TERMS, key=str.lower)


def test_each_glossary_entry_is_two_to_four_sentences_and_points_somewhere():
    for entry in GLOSSARY.read_text(encoding="utf-8").split("\n## ")[1:]:
        term, _, body = entry.partition("\n")
        prose = [line for line in body.strip().splitlines() if not line.startswith("See ")]
        sentences = len(re.findall(r"[.!?](?=\s|$)", " ".join(prose)))
        assert 2 <= sentences <= 4, f"{term}: {sentences} sentences"
        assert re.search(r"^See .*\]\(", body, re.MULTILINE), f"{term}: no 'See' line with a link"


def test_the_glossarys_links_reach_the_lessons_and_the_spec_headings():
    assert broken_links(GLOSSARY.read_text(encoding="utf-8"), GLOSSARY.parent, own=GLOSSARY) == []
    named = set(re.findall(r"\((?:\.\./notebooks/)(\d\d_\w+)\.ipynb\)", GLOSSARY.read_text(encoding="utf-8")))
    assert named and named <= set(LESSONS)


def test_the_layer_table_names_every_module_of_the_package():
    table = README.read_text(encoding="utf-8").split("## The layers", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`tcrp_lab\.(\w+)`", table))
    modules = {p.stem for p in (ROOT / "tcrp_lab").glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in (ROOT / "tcrp_lab").iterdir() if (p / "__init__.py").is_file()}
    assert modules - named == set(), "add a row to README's layer table for each"
    assert named - modules == set(), "the table names modules that are gone"
