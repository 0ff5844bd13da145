"""The expression evaluator follows the service's rules, so the conditions tested are the ones run."""

from __future__ import annotations

import re

import pytest

from expressions import ExpressionError, Value, evaluate

BRANCH: dict[str, Value] = {
    "variables": {"Build.SourceBranch": "refs/heads/release/delivery/v1.4.0"}
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("startsWith(variables['Build.SourceBranch'], 'refs/heads/release/delivery/v')", True),
        ("startsWith(variables['Build.SourceBranch'], 'REFS/HEADS/RELEASE/')", True),
        ("startsWith(variables['Build.SourceBranch'], 'refs/heads/release/package/v')", False),
        ("eq(variables['Build.SourceBranch'], 'refs/heads/main')", False),
        ("eq(variables['build.sourcebranch'], 'Refs/Heads/Release/Delivery/V1.4.0')", True),
        ("endsWith(variables['Build.SourceBranch'], '1.4.0')", True),
        ("contains(variables['Build.SourceBranch'], '/delivery/')", True),
    ],
)
def test_branch_conditions_compare_like_the_service(expression: str, expected: bool) -> None:
    assert evaluate(expression, BRANCH) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("eq('1', 1)", True),  # the right side takes the left side's type
        ("eq(1, '1.0')", True),
        ("eq(true, 'yes')", True),  # a non-empty string is true
        ("eq('false', false)", True),  # false becomes the string 'False'; case is ignored
        ("not('false')", False),  # only the empty string is a false string
        ("not('')", True),
        ("gt(length('abc'), 2)", True),
        ("in('qa', 'dev', 'qa', 'prod')", True),
        ("notIn('staging', 'dev', 'qa')", True),
        ("eq(variables['Not.Set'], '')", True),  # a missing value is null, and null equals ''
    ],
)
def test_values_convert_like_the_service(expression: str, expected: bool) -> None:
    assert evaluate(expression, {"variables": {}}) is expected


def test_and_or_stop_at_the_deciding_argument() -> None:
    # The second argument would fail: it is never evaluated.
    assert evaluate("or(true, nosuch())", {}) is True
    assert evaluate("and(false, nosuch())", {}) is False
    with pytest.raises(ExpressionError, match="unknown function nosuch"):
        evaluate("and(true, nosuch())", {})


def test_template_functions_build_values() -> None:
    parameters: dict[str, Value] = {"folders": ["src/shipping/delivery", "src/servicekit"]}
    context: dict[str, Value] = {"parameters": parameters}
    assert evaluate("join(' ', parameters.folders)", context) == (
        "src/shipping/delivery src/servicekit"
    )
    assert evaluate("length(parameters.folders)", context) == 2
    assert evaluate("format('{0}-{1} {{x}}', 'shipping', 'qa')", context) == "shipping-qa {x}"
    assert evaluate("coalesce(parameters.none, '', 'fallback')", context) == "fallback"
    assert evaluate("parameters.folders[1]", context) == "src/servicekit"


def test_status_functions_come_from_the_caller() -> None:
    assert evaluate("and(succeeded(), true)", {}, {"succeeded": lambda: False}) is False


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("eq(1, 2", "expected ')'"),
        ("eq(1, 2))", "unexpected ')'"),
        ("parameters.", "expected a property name"),
        ("eq('a' 'b')", "expected ')'"),
        ("unknown.thing", "unknown name 'unknown'"),
        ("eq(1; 2)", "unexpected ';"),
    ],
)
def test_a_broken_expression_is_reported_with_its_text(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)) as raised:
        evaluate(expression, {"parameters": {}})
    assert expression in str(raised.value)
