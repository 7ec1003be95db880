"""The checker framework: "not yet" on a stub, the first failing case on a wrong answer, a pass on a right one."""

from __future__ import annotations

import pytest

from tcrp_lab.exercises import Case, CheckResult, check

TODO = "Return the texts `sender` sent, in room order."


def double_cases(double):
    return [
        Case("double(2)", lambda: double(2), 4, hint="multiply by two, do not add two"),
        Case("double(0), zero", lambda: double(0), 0, hint="zero doubled is zero"),
        Case("double(-3), a negative number", lambda: double(-3), -6, hint="keep the sign"),
    ]


def stub(x):
    # YOUR CODE HERE
    raise NotImplementedError()


def test_a_stub_is_not_yet_with_what_to_do_and_no_traceback():
    result = check("double", double_cases(stub), todo=TODO)
    assert result.status == "not_yet" and not result
    text, html = str(result), result._repr_html_()
    for shown in (text, html):
        assert "not yet" in shown
        assert "Traceback" not in shown and "NotImplementedError" not in shown
    assert TODO in text
    assert "Return the texts `sender` sent" in html


def test_a_stub_without_a_todo_still_says_what_to_do():
    result = check("double", double_cases(stub))
    assert result.status == "not_yet" and "raise NotImplementedError()" in result.todo


def test_a_wrong_answer_names_the_first_failing_case_its_hint_and_how_many_passed():
    result = check("double", double_cases(lambda x: x + 2), todo=TODO)
    assert result.status == "failed" and not result
    assert result.passed == 1 and result.total == 3
    assert result.failures[0] == "double(0), zero: expected 0, got 2"
    assert result.hint == "zero doubled is zero"
    text = str(result)
    assert "1 of 3 checks passed" in text
    assert "double(0), zero: expected 0, got 2" in text and "Hint: zero doubled is zero" in text
    assert text.index("double(0)") < text.index("double(-3)")   # the first failure comes first


def test_a_right_answer_says_so():
    result = check("double", double_cases(lambda x: 2 * x), todo=TODO)
    assert result.status == "passed" and result
    assert result.passed == 3 and str(result) == "✅ double: all 3 checks passed."


def test_an_exception_is_a_failure_naming_its_last_line_never_raised():
    result = check("double", double_cases(lambda x: 12 // x if x else {}[x]), todo=TODO)
    assert result.status == "failed"
    assert result.failures[0] == "double(2): expected 4, got 6"
    assert result.failures[1] == "double(0), zero: your code raised KeyError: 0"
    assert "Traceback" not in str(result)


def test_a_failing_comparison_is_a_failure_not_a_crash():
    class Awkward:
        def __eq__(self, other):
            raise TypeError("cannot compare")

    result = check("awkward", [Case("awkward()", Awkward, 1)], todo=TODO)
    assert result.status == "failed" and "comparing them raised TypeError: cannot compare" in result.failures[0]


def test_a_custom_compare_replaces_equality():
    close = Case("third()", lambda: 1 / 3, 0.333, compare=lambda got, want: abs(got - want) < 1e-3)
    assert check("third", [close], todo=TODO)


def test_old_tuple_cases_still_work():
    result = check("double", [("double(2)", lambda: 5, 4), ("double(1)", lambda: 2, 2)])
    assert result.status == "failed" and result.passed == 1
    assert result.failures == ["double(2): expected 4, got 5"]


def test_a_huge_value_is_cut_short():
    result = check("big", [Case("big()", lambda: "x" * 10_000, "")], todo=TODO)
    assert len(result.failures[0]) < 300 and result.failures[0].endswith("…")


def test_the_html_escapes_the_learners_values_and_is_colored_by_status():
    result = check("tags", [Case("tags()", lambda: "<script>alert(1)</script>", "<b>")], todo=TODO)
    html = result._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "tcrp-check-failed" in html
    assert "tcrp-check-not_yet" in CheckResult.not_yet("x", TODO)._repr_html_()
    assert "tcrp-check-passed" in CheckResult.success("x", 2)._repr_html_()


@pytest.mark.parametrize("result, status", [
    (CheckResult.success("t", 4), "passed"),
    (CheckResult.not_yet("t", TODO), "not_yet"),
    (CheckResult.failure("t", "f(1): expected 2, got 3", hint="off by one", passed=2, total=5), "failed"),
])
def test_the_constructors_give_each_status_and_only_a_pass_is_true(result, status):
    assert result.status == status
    assert bool(result) is (status == "passed")


def test_a_built_failure_shows_its_problem_hint_and_count():
    text = str(CheckResult.failure("f", "f(1): expected 2, got 3", hint="off by one", passed=2, total=5))
    assert "2 of 5 checks passed" in text and "f(1): expected 2, got 3" in text and "Hint: off by one" in text
