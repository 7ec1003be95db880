"""The two editions of the lessons: the student edition is generated, up to date, answer-free and runs.

``notebooks/solutions/NN_*.ipynb`` (the instructor edition, worked answers) is the source;
``notebooks/NN_*.ipynb`` (the student edition) is made from it by ``python -m tcrp_lab.editions``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from tcrp_lab import editions
from tcrp_lab.editions import BEGIN, END, SolutionError, exercise_names, solution_regions, student_edition
from tests.test_readme import broken_links

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"
STUDENT = ROOT / "notebooks"
SOURCES = sorted(SOLUTIONS.glob(editions.LESSON))
LESSONS = [path.name for path in SOURCES]
CHECKER_CALL = re.compile(r"\bcheck_\w+\(([^()]*)\)")   # check_x(learners_function, learners_class, ...)
ANSI = re.compile(r"\x1b\[[0-9;]*m")   # the colours of a traceback
REGENERATE = "regenerate it with `make editions` (python -m tcrp_lab.editions); never edit it by hand"


def source(name: str) -> nbformat.NotebookNode:
    return nbformat.read(SOLUTIONS / name, as_version=4)


def student(name: str) -> nbformat.NotebookNode:
    return nbformat.read(STUDENT / name, as_version=4)


def notebook(*cells: tuple[str, str], **metadata) -> nbformat.NotebookNode:
    """A small notebook of ("code" | "markdown", source) cells with fixed ids."""
    made = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    nb = nbformat.v4.new_notebook(metadata=metadata)
    nb.cells = [made[kind](text, id=f"cell-{i}") for i, (kind, text) in enumerate(cells)]
    return nb


def checked(cell) -> set[str]:
    """The names a code cell hands to checkers: ``check_window(MyWindow, receive)`` -> {MyWindow, receive}."""
    if cell.cell_type != "code":
        return set()
    return {arg.strip() for call in CHECKER_CALL.findall(cell.source) for arg in call.split(",")
            if arg.strip().isidentifier()}


def cells_of(text: str) -> list[str]:
    return [cell.source for cell in nbformat.reads(text, as_version=4).cells]


# --- the generator ---------------------------------------------------------------------------------

def test_a_solution_region_becomes_nbgraders_stub_at_the_same_indentation():
    nb = notebook(("code", "class Window:\n    def accept(self, seq):\n        seen = self.seen\n"
                           f"        {BEGIN}\n        if seq in seen:\n            return False\n"
                           f"        seen.add(seq)\n        return True\n        {END}\n\ncheck_window(Window)"))
    assert cells_of(student_edition(nb)) == [
        "class Window:\n    def accept(self, seq):\n        seen = self.seen\n"
        "        # YOUR CODE HERE\n        raise NotImplementedError()\n\ncheck_window(Window)"]


def test_every_region_of_a_cell_is_replaced_and_the_rest_is_kept():
    nb = notebook(("code", f"def f():\n    {BEGIN}\n    return 1\n    {END}\n\n\ndef g(x):\n    y = x\n"
                           f"    {BEGIN}\n    return y * 2\n    {END}\n"))
    (text,) = cells_of(student_edition(nb))
    assert text.count("raise NotImplementedError()") == 2
    assert "return 1" not in text and "return y * 2" not in text and "    y = x\n" in text


def test_a_markdown_answer_becomes_your_answer_here():
    nb = notebook(("markdown", f"Why four keys?\n\n{BEGIN}\nBoth directions count from 0.\n{END}\n"))
    assert cells_of(student_edition(nb)) == ["Why four keys?\n\nYOUR ANSWER HERE\n"]


def test_outputs_and_run_records_are_cleared_because_outputs_can_leak_answers():
    nb = notebook(("code", "print(6 * 7)"))
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    nb.cells[0].execution_count = 3
    nb.cells[0].metadata.update({"execution": {"iopub.status.busy": "2026-11-28T12:51:52Z"}, "tags": ["keep"]})
    nb.metadata.update({"widgets": {"state": {"answer": 42}}, "language_info": {"name": "python", "version": "3.11.7"},
                        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    out = nbformat.reads(student_edition(nb), as_version=4)
    (cell,) = out.cells
    assert cell.outputs == [] and cell.execution_count is None
    assert cell.metadata == {"tags": ["keep"]}
    assert out.metadata == {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                            "language_info": {"name": "python"}}


def test_links_to_the_repository_are_rewritten_one_level_up():
    nb = notebook(("markdown", "[spec](../../docs/TCRP.md#5-timeouts), [AEAD](../../docs/GLOSSARY.md#aead), "
                               "[next](01_sockets.ipynb), <a href=\"../../README.md\">README</a>\n"
                               "[ref]: ../../docs/TCRP.md"),
                  ("code", "path = '../../docs/TCRP.md'"))
    assert cells_of(student_edition(nb)) == [
        "[spec](../docs/TCRP.md#5-timeouts), [AEAD](../docs/GLOSSARY.md#aead), [next](01_sockets.ipynb), "
        "<a href=\"../README.md\">README</a>\n[ref]: ../docs/TCRP.md",
        "path = '../../docs/TCRP.md'"]   # code is not a link: a cell that needs a path must not depend on the folder


def test_the_output_is_the_same_bytes_every_time():
    nb = notebook(("markdown", "# Lesson"), ("code", f"def f():\n    {BEGIN}\n    return 'ü'\n    {END}"))
    first = student_edition(nb)
    assert first == student_edition(nb) and first.endswith("}\n") and "\r" not in first
    assert first == student_edition(nbformat.reads(nbformat.writes(nb), as_version=4))


@pytest.mark.parametrize("cell, message", [
    (f"def f():\n    {BEGIN}\n    {BEGIN}\n    return 1\n    {END}\n    {END}",
     "cell 2, line 3: '### BEGIN SOLUTION' inside the region opened on line 2"),
    (f"def f():\n    {BEGIN}\n    return 1\n", "cell 2, line 2: '### BEGIN SOLUTION' has no '### END SOLUTION'"),
    (f"def f():\n    return 1\n    {END}", "cell 2, line 3: '### END SOLUTION' with no '### BEGIN SOLUTION'"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION",
     "cell 2, line 2: '# BEGIN SOLUTION' looks like"),
    (f"{BEGIN}\nanswer = 42\n{END}", "cell 2, line 1: the solution region is not inside a function body"),
    (f"class Window:\n    {BEGIN}\n    size = 64\n    {END}", "cell 2, line 2: the solution region is not inside"),
    (f"def f():\n    return [\n    {BEGIN}\n    1,\n    {END}\n    ]", "cell 2: with its answer replaced by the stub, "
                                                                          "the cell is not valid Python"),
], ids=["nested", "no-end", "no-begin", "near-miss", "top-level", "class-body", "mid-expression"])
def test_a_broken_source_is_an_error_that_says_where_and_why(cell, message):
    with pytest.raises(SolutionError, match=re.escape(f"03_x.ipynb, {message}")):
        student_edition(notebook(("markdown", "# x"), ("code", cell)), "03_x.ipynb")


def test_prose_or_strings_that_mention_the_markers_are_not_markers():
    nb = notebook(("markdown", f"Answers sit between `{BEGIN}` and `{END}`."),
                  ("code", f"print('{BEGIN} starts an answer')"))
    assert cells_of(student_edition(nb)) == [cell.source for cell in nb.cells]


def test_an_nbgrader_solution_cell_without_a_region_is_an_error_not_a_top_level_raise():
    nb = notebook(("code", "answer = 42"))
    nb.cells[0].metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "a"}
    with pytest.raises(SolutionError, match="nbgrader solution cell with no"):
        student_edition(nb)


def test_exercises_are_the_top_level_functions_and_classes_holding_answers():
    nb = notebook(("code", f"class Window:\n    def accept(self, seq):\n        {BEGIN}\n        return True\n"
                           f"        {END}\n\n\ndef helper():\n    return 1\n\n\ndef recover(a, b):\n    {BEGIN}\n"
                           f"    return a\n    {END}"))
    assert exercise_names(nb) == {"Window", "recover"}   # what a learner hands to a checker


def test_the_command_writes_checks_and_removes_what_has_no_source(tmp_path, capsys):
    solutions, out = tmp_path / "solutions", tmp_path
    solutions.mkdir()
    nbformat.write(notebook(("code", f"def f():\n    {BEGIN}\n    return 1\n    {END}")), solutions / "00_a.ipynb")
    (out / "09_gone.ipynb").write_text("{}")
    args = ["--solutions", str(solutions), "--student", str(out)]
    assert editions.main([*args, "--check"]) == 1
    assert editions.main(args) == 0
    assert "raise NotImplementedError()" in (out / "00_a.ipynb").read_text() and not (out / "09_gone.ipynb").exists()
    assert editions.main([*args, "--check"]) == 0
    (out / "00_a.ipynb").write_text((out / "00_a.ipynb").read_text().replace("YOUR CODE", "MY CODE"))
    assert editions.main([*args, "--check"]) == 1
    assert "out of date: " in capsys.readouterr().out


def test_the_command_reports_a_broken_source_without_a_traceback(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    nbformat.write(notebook(("code", f"{BEGIN}\nx = 1\n{END}")), tmp_path / "solutions" / "00_a.ipynb")
    assert editions.main(["--solutions", str(tmp_path / "solutions"), "--student", str(tmp_path)]) == 2
    assert "not inside a function body" in capsys.readouterr().err and not (tmp_path / "00_a.ipynb").exists()


if importlib.util.find_spec("nbgrader") is not None:
    # Defined only where nbgrader is installed: it is not a dependency (the learner's environment
    # stays free of it), and a skip would stand in for a comparison that was never made.
    def test_nbgraders_clear_solutions_gives_the_same_cells():
        from nbconvert.preprocessors import ClearOutputPreprocessor
        from nbgrader.preprocessors import ClearSolutions

        for nb in [source(name) for name in LESSONS] + [notebook(
                ("markdown", f"Why?\n  {BEGIN}\n  Because.\n  {END}"),
                ("code", f"class A:\n    def f(self):\n        {BEGIN}\n        return 1\n        {END}\n\nA()"))]:
            theirs, resources = ClearSolutions(enforce_metadata=False).preprocess(nbformat.from_dict(
                json.loads(json.dumps(nb))), {})
            theirs, _ = ClearOutputPreprocessor().preprocess(theirs, resources)
            ours = nbformat.reads(student_edition(nb), as_version=4)
            links = [editions._UP_TWO.sub(r"\1../", c.source) if c.cell_type == "markdown" else c.source
                     for c in theirs.cells]
            assert [c.source for c in ours.cells] == links
            assert [c.outputs for c in ours.cells if c.cell_type == "code"] == \
                [c.outputs for c in theirs.cells if c.cell_type == "code"]


# --- the committed editions ------------------------------------------------------------------------

def test_there_is_a_student_notebook_for_every_lesson_and_no_other():
    assert LESSONS, "no lessons in notebooks/solutions"
    assert sorted(path.name for path in STUDENT.glob(editions.LESSON)) == LESSONS, REGENERATE


@pytest.mark.parametrize("name", LESSONS)
def test_the_committed_student_edition_is_exactly_what_the_generator_makes(name):
    expected = student_edition(source(name), f"notebooks/solutions/{name}")
    assert (STUDENT / name).exists(), f"notebooks/{name} is missing: {REGENERATE}"
    assert (STUDENT / name).read_bytes() == expected.encode(), f"notebooks/{name} is out of date: {REGENERATE}"


@pytest.mark.parametrize("name", LESSONS)
def test_no_student_notebook_holds_an_answer_or_an_output(name):
    text = [cell.source for cell in student(name).cells]
    for index, cell in enumerate(source(name).cells):
        for region in solution_regions(cell.source, f"{name}, cell {index + 1}"):
            answer = region.strip()
            assert answer and not any(answer in cell_text for cell_text in text), \
                f"{name}, cell {index + 1}: the answer is in the student edition:\n{answer}"
    assert not any(BEGIN in t or END in t for t in text)
    assert all(not cell.get("outputs") for cell in student(name).cells)


@pytest.mark.parametrize("name", LESSONS)
def test_every_lesson_with_a_checker_has_its_answers_between_markers(name):
    """An exercise whose answer is not between the markers ships its answer to the learner."""
    given = set().union(*(checked(cell) for cell in source(name).cells))
    exercises = exercise_names(source(name), name)
    if given:
        assert exercises, f"{name} calls checkers on {sorted(given)}, but no answer is between the markers"
    assert exercises <= given, f"{name}: {sorted(exercises - given)} hold answers but no checker is given them"


@pytest.mark.parametrize("name", LESSONS)
def test_the_worked_answers_pass_their_checkers_in_the_instructor_edition(name):
    exercises = exercise_names(source(name), name)
    for cell in source(name).cells:
        if checked(cell) & exercises:
            shown = output_text(cell)
            assert "checks passed" in shown and "not yet" not in shown, f"{name}: {cell.source}\n{shown}"


def output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts += [str(output.data.get(kind, "")) for kind in ("text/plain", "text/html")]
        elif output.output_type == "error":
            parts.append(ANSI.sub("", "\n".join(output.traceback)))
    return "\n".join(parts)


# --- links from both editions ----------------------------------------------------------------------

@pytest.mark.parametrize("folder", [SOLUTIONS, STUDENT], ids=["instructor", "student"])
def test_every_relative_link_in_an_edition_reaches_a_file_and_its_heading(folder):
    broken = [f"{path.name}: {link}" for path in sorted(folder.glob(editions.LESSON))
              for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"
              for link in broken_links(cell.source, folder) if not link.startswith("#")]
    assert broken == []


# --- the student edition runs ----------------------------------------------------------------------

@pytest.mark.notebook
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", LESSONS)
def test_the_student_edition_runs_without_error_and_each_exercise_says_not_yet(name, tmp_path):
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    assert (STUDENT / name).exists(), f"notebooks/{name} is missing: {REGENERATE}"
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(STUDENT / name, folder / name)   # a copy: nothing is written beside the committed one
    nb = nbformat.read(folder / name, as_version=4)
    kernel = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    NotebookClient(nb, km=kernel, timeout=120, startup_timeout=60, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()

    errors = [f"cell {i + 1}:\n{cell.source}\n{output_text(cell)}" for i, cell in enumerate(nb.cells)
              if any(o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr"
                                                  and "Traceback" in o.text) for o in cell.get("outputs", []))]
    assert errors == [], "\n\n".join(errors)
    exercises = exercise_names(source(name), name)
    checkers = [cell for cell in nb.cells if cell.cell_type == "code"
                and checked(cell) & exercises]
    assert len(checkers) >= (1 if exercises else 0)
    for cell in checkers:
        shown = output_text(cell)
        assert "not yet" in shown and "Traceback" not in shown, f"{name}: {cell.source}\n{shown}"
