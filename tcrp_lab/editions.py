"""The student edition of the lessons, generated from the instructor edition (issue 13).

``notebooks/solutions/NN_name.ipynb`` (worked answers, executed outputs) is the only source;
``notebooks/NN_name.ipynb`` is generated from it by a chain of nbconvert preprocessors and never
edited by hand::

    python -m tcrp_lab.editions            # write notebooks/NN_*.ipynb
    python -m tcrp_lab.editions --check    # exit 1 if any is out of date

Worked answers follow nbgrader's convention, so a teacher who grades with nbgrader can take the
instructor edition as an assignment source: each answer sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` inside the body of the function the checker calls, and becomes
``# YOUR CODE HERE`` / ``raise NotImplementedError()`` at the same indentation (in a markdown
cell, ``YOUR ANSWER HERE``). nbgrader itself is not needed: it would add packages and JupyterLab
extensions to the learner's environment for this one step. This module needs nbconvert (it comes
with the ``lab`` and ``test`` extras); the package itself never imports it.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, Preprocessor
from traitlets import Unicode

__all__ = ["BEGIN", "END", "ClearSolutions", "SolutionError", "StableMetadata", "StudentLinks",
           "exercise_names", "solution_regions", "student_edition", "write_editions"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"

SOLUTIONS = Path("notebooks/solutions")
STUDENT = Path("notebooks")
LESSON = "[0-9][0-9]_*.ipynb"

# A comment or heading that looks like a marker without being one would silently ship its answer
# (prose that merely mentions the markers, e.g. in backticks, is left alone).
_NEAR_MARKER = re.compile(r"^\s*#.*\b(BEGIN|END)\s*SOLUTION", re.IGNORECASE)
# Relative links from notebooks/solutions/ go up two levels to the repository; from notebooks/, one.
_UP_TWO = re.compile(r"""(\]\(\s*<?|^\[[^\]]+\]:\s*<?|(?:href|src)=["'])\.\./\.\./""", re.MULTILINE)
# Cell metadata that only records one execution (nbclient's timings, old extensions' ExecuteTime).
_RUN_METADATA = {"collapsed", "scrolled", "execution", "ExecuteTime"}


class SolutionError(ValueError):
    """A source notebook breaks the solution-marker rules; the message says where and how to fix it."""


def _scan(source: str, where: str) -> Iterator[tuple[int, int, str]]:
    """Each solution region of a cell as (BEGIN line index, END line index, indentation).

    Raises :class:`SolutionError` on a nested BEGIN, an END without a BEGIN, a BEGIN without an
    END, or a line that looks like a marker but is not one.
    """
    begin = None
    indent = ""
    for number, line in enumerate(source.split("\n")):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise SolutionError(f"{where}, line {number + 1}: {BEGIN!r} inside the region opened on "
                                    f"line {begin + 1}; close it with {END!r} first (regions do not nest)")
            begin, indent = number, line[: line.index(BEGIN)]
        elif marker == END:
            if begin is None:
                raise SolutionError(f"{where}, line {number + 1}: {END!r} with no {BEGIN!r} before it")
            yield begin, number, indent
            begin = None
        elif _NEAR_MARKER.search(line):
            raise SolutionError(f"{where}, line {number + 1}: {line.strip()!r} looks like a solution marker but "
                                f"is not one; write exactly {BEGIN!r} or {END!r} on a line of its own")
    if begin is not None:
        raise SolutionError(f"{where}, line {begin + 1}: {BEGIN!r} has no {END!r} after it")


def solution_regions(source: str, where: str = "cell") -> list[str]:
    """The text of each solution region in a cell's source (markers excluded)."""
    lines = source.split("\n")
    return ["\n".join(lines[begin + 1: end]) for begin, end, _ in _scan(source, where)]


def _python(source: str) -> str:
    """The cell as plain Python, line for line (IPython magics become calls), when IPython is there."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - the lab environment always has IPython
        return source
    return TransformerManager().transform_cell(source)


def _statements(tree: ast.AST) -> Iterator[tuple[ast.stmt, list[ast.AST]]]:
    """Every statement with the defs and classes around it, outermost first."""
    def walk(node: ast.AST, around: list[ast.AST]) -> Iterator[tuple[ast.stmt, list[ast.AST]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield child, around
            scope = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            yield from walk(child, around + [child] if scope else around)
    yield from walk(tree, [])


def _require_function_bodies(source: str, stub_lines: dict[int, int], where: str) -> None:
    """Every statement of a stub must sit in a function body, so it raises only when the checker calls it.

    ``stub_lines`` maps each stub line (1-based) to its region's BEGIN line in the source, for messages.
    """
    try:
        tree = ast.parse(_python(source))
    except SyntaxError as exc:
        regions = ", ".join(str(line) for line in sorted(set(stub_lines.values())))
        raise SolutionError(f"{where}: with its answer replaced by the stub, the cell is not valid Python "
                            f"({exc.msg}); a solution region (line {regions}) must hold whole statements of "
                            f"a function body") from None
    found = set()
    for statement, around in _statements(tree):
        if statement.lineno in stub_lines:
            found.add(statement.lineno)
            if not around or not isinstance(around[-1], (ast.FunctionDef, ast.AsyncFunctionDef)):
                line = stub_lines[statement.lineno]
                raise SolutionError(f"{where}, line {line}: the solution region is not inside a function body; "
                                    f"put the answer in the body of the function the checker calls, so the "
                                    f"student's stub raises NotImplementedError inside the checker and not "
                                    f"when the cell runs")
    if not found:
        raise SolutionError(f"{where}: the stub that replaces the solution region is not a statement of its own")


class ClearSolutions(Preprocessor):
    """nbgrader's ``ClearSolutions`` convention, without nbgrader: each solution region becomes a stub.

    Unlike nbgrader it refuses (``SolutionError``) unbalanced markers, near-miss markers, a code
    region outside a function body, and an nbgrader solution cell with no region (nbgrader would
    replace the whole cell, putting a bare ``raise`` at the top level).
    """

    code_stub = Unicode(CODE_STUB, help="What replaces a solution region in a code cell").tag(config=True)
    text_stub = Unicode(TEXT_STUB, help="What replaces a solution region in a markdown cell").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        where = f"{resources.get('source', 'notebook')}, cell {index + 1}"
        stub = (self.code_stub if cell.cell_type == "code" else self.text_stub).split("\n")
        lines = cell.source.split("\n")
        kept, stub_lines, start = [], {}, 0
        for begin, end, indent in list(_scan(cell.source, where)):
            kept += lines[start:begin]
            stub_lines.update(dict.fromkeys(range(len(kept) + 1, len(kept) + len(stub) + 1), begin + 1))   # 1-based
            kept += [indent + line for line in stub]
            start = end + 1
        if not stub_lines:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                raise SolutionError(f"{where}: an nbgrader solution cell with no {BEGIN!r} region; put the "
                                    f"answer between the markers inside a function body")
            return cell, resources
        cell.source = "\n".join(kept + lines[start:])
        if cell.cell_type == "code":
            _require_function_bodies(cell.source, stub_lines, where)
        return cell, resources


class StudentLinks(Preprocessor):
    """Relative links in markdown, written from ``notebooks/solutions/``, made right from ``notebooks/``."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            cell.source = _UP_TWO.sub(r"\1../", cell.source)
        return cell, resources


class StableMetadata(Preprocessor):
    """Notebook metadata that does not change from one run or machine to the next.

    Keeps the kernel spec and the language name; drops the Python version and saved widget state.
    """

    def preprocess(self, nb, resources):
        kept = {"kernelspec": nb.metadata.get("kernelspec"),
                "language_info": {k: v for k, v in nb.metadata.get("language_info", {}).items() if k != "version"}}
        nb.metadata = nbformat.from_dict({key: value for key, value in kept.items() if value})
        return nb, resources


def _pipeline() -> list[Preprocessor]:
    return [ClearSolutions(), ClearOutputPreprocessor(remove_metadata_fields=_RUN_METADATA),
            StudentLinks(), StableMetadata()]


def student_edition(notebook: nbformat.NotebookNode, source: str = "notebook") -> str:
    """The student edition of an instructor notebook, as the exact text to write (deterministic).

    ``source`` names the notebook in error messages.
    """
    nb = copy.deepcopy(notebook)
    resources = {"source": source}
    for preprocessor in _pipeline():
        nb, resources = preprocessor.preprocess(nb, resources)
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def exercise_names(notebook: nbformat.NotebookNode, source: str = "notebook") -> set[str]:
    """The learner's exercises: each top-level function or class of a cell whose body holds a solution region.

    These are the names a lesson hands to its checkers (``check_window(Window)``).
    """
    names: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        begins = [begin + 1 for begin, _, _ in _scan(cell.source, f"{source}, cell {index + 1}")]
        if begins:
            names.update(node.name for node in ast.parse(_python(cell.source)).body
                         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                         and any(node.lineno < line <= node.end_lineno for line in begins))
    return names


def _generated(solutions: Path, student: Path) -> dict[Path, str | None]:
    """What each student notebook should contain (None: it has no source any more and should go)."""
    wanted: dict[Path, str | None] = {path: None for path in student.glob(LESSON)}
    for path in sorted(solutions.glob(LESSON)):
        wanted[student / path.name] = student_edition(nbformat.read(path, as_version=4), str(path))
    return wanted


def write_editions(solutions: Path = SOLUTIONS, student: Path = STUDENT, *, check: bool = False) -> list[Path]:
    """Bring every student notebook up to date with its source; return the ones that were (or would be) changed."""
    changed = []
    for path, text in sorted(_generated(solutions, student).items()):
        if text is None:
            changed.append(path)
            if not check:
                path.unlink()
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(path)
            if not check:
                path.write_text(text, encoding="utf-8", newline="\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcrp_lab.editions", description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help="the instructor edition (the source)")
    parser.add_argument("--student", type=Path, default=STUDENT, help="where the student edition is written")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any notebook is out of date")
    args = parser.parse_args(argv)
    if not any(args.solutions.glob(LESSON)):
        parser.error(f"no lessons ({LESSON}) in {args.solutions}; run from the repository root")
    try:
        changed = write_editions(args.solutions, args.student, check=args.check)
    except SolutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "out of date" if args.check else "written"
    for path in changed:
        print(f"{verb}: {path}" if path.exists() or args.check else f"removed: {path}")
    if args.check and changed:
        print("regenerate with: python -m tcrp_lab.editions", file=sys.stderr)
        return 1
    if not changed:
        print("the student edition is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
