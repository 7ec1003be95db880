"""The lessons as files: where the installed package keeps them, and copying them out for a learner.

A wheel carries the lessons as package data under ``tcrp_lab/lessons/`` (``pyproject.toml`` maps the
repository's ``notebooks/``, ``docs/`` and ``README.md`` there at build time, so git holds them once).
An editable install or a checkout has no such folder: the repository itself is used.

The copy has the layout of the Docker image's home folder, so the lessons' relative links work::

    DIR/notebooks/NN_name.ipynb             the student edition (what a learner opens)
    DIR/notebooks/solutions/NN_name.ipynb   the worked answers, one deliberate step away
    DIR/docs/TCRP.md, DIR/docs/GLOSSARY.md  what the lessons link to (../docs/…)
    DIR/README.md, DIR/LICENSE

A file the learner already has is never replaced unless ``force``: their edits are their work.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Copied", "copy_lessons", "lesson_files", "lessons_root"]

PACKAGE = Path(__file__).resolve().parent
PATTERNS = ("notebooks/[0-9][0-9]_*.ipynb", "notebooks/solutions/[0-9][0-9]_*.ipynb", "docs/*.md", "README.md",
            "LICENSE")
FIRST_LESSON = "notebooks/00_start_here.ipynb"


def lessons_root() -> Path:
    """The folder holding ``notebooks/``, ``docs/`` and ``README.md``: the wheel's package data, or the checkout."""
    for root in (PACKAGE / "lessons", PACKAGE.parent):
        if (root / FIRST_LESSON).is_file():
            return root
    raise FileNotFoundError(f"no lessons in {PACKAGE / 'lessons'} (nor a checkout around it): reinstall tcrp_lab")


def lesson_files(root: Path | None = None) -> list[Path]:
    """The files a learner gets, relative to the lessons root."""
    root = root or lessons_root()
    return sorted({path.relative_to(root) for pattern in PATTERNS for path in root.glob(pattern) if path.is_file()})


@dataclass
class Copied:
    """What :func:`copy_lessons` did, file by file (paths relative to the destination)."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)       # the learner's edited copy, left alone


def copy_lessons(dest: Path, *, force: bool = False, root: Path | None = None) -> Copied:
    """Copy the lessons into ``dest`` (made if missing). A file that exists and differs is kept
    unless ``force``; copying into the folder the lessons come from does nothing."""
    root = (root or lessons_root()).resolve()
    dest = Path(dest).expanduser().resolve()
    done = Copied()
    for rel in lesson_files(root):
        source, target = root / rel, dest / rel
        if target.exists() and (source == target or filecmp.cmp(source, target, shallow=False)):
            done.unchanged.append(rel)
        elif target.exists() and not force:
            done.kept.append(rel)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            done.written.append(rel)
    return done
