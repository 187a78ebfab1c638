"""The experiment's figures: the join of impressions and attributions, Wilson intervals, the two-proportion test."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats

from recipe_ml.evaluation.online import render_text, summarize, two_proportion_test, wilson_interval


def test_wilson_interval_matches_the_textbook_values() -> None:
    """10 of 100: Wilson's 95% interval is [5.52%, 17.44%] (Newcombe 1998, method 3)."""
    low, high = wilson_interval(10, 100)
    assert (low, high) == (pytest.approx(0.0552, abs=1e-4), pytest.approx(0.1744, abs=1e-4))
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] == pytest.approx(0.1611, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_two_proportion_test_agrees_with_the_chi_square_test_without_correction() -> None:
    z, p = two_proportion_test(10, 100, 20, 100)
    chi2, p_chi2, _, _ = stats.chi2_contingency([[10, 90], [20, 80]], correction=False)
    assert z == pytest.approx(chi2**0.5) and p == pytest.approx(p_chi2)
    assert two_proportion_test(0, 0, 1, 10) == (0.0, 1.0)
    assert two_proportion_test(0, 10, 0, 10) == (0.0, 1.0), "no success anywhere: nothing to test"


def impression(
    rid: str, variant: str, user: int, model: str = "two_tower", endpoint: str = "recipes"
) -> dict[str, Any]:
    return {
        "kind": "impression",
        "recommendationId": rid,
        "endpoint": endpoint,
        "variant": variant,
        "model": model,
        "userId": user,
        "recipeIds": [1, 2, 3],
    }


def attribution(rid: str, recipe: int, kind: str = "cook", rank: int = 1, endpoint: str = "recipes") -> dict[str, Any]:
    return {
        "kind": "attribution",
        "recommendationId": rid,
        "endpoint": endpoint,
        "recipeId": recipe,
        "interactionType": kind,
        "rank": rank,
    }


def test_an_answer_converts_once_however_many_cooks_and_redeliveries() -> None:
    records = [
        attribution("a1", 1, rank=1),  # before its impression: still joined
        impression("a1", "control", 1),
        impression("a2", "control", 1),
        impression("a2", "control", 1),  # the same record read twice
        impression("b1", "treatment", 2, model="popularity"),
        impression("b2", "treatment", 3),
        impression("x1", "control", 4, endpoint="similar"),
        attribution("a1", 2, rank=2),
        attribution("a1", 2, rank=2),  # a redelivered record
        attribution("a2", 3, kind="view", rank=3),
        attribution("b1", 1, rank=1),
        attribution("zz", 1),  # an answer not in the log
        attribution("x1", 1, endpoint="similar"),  # another endpoint's answer: not this report's
    ]

    report = summarize(records, order=["control", "treatment"])

    control, treatment = report.variants
    assert (report.reference, control.variant, treatment.variant) == ("control", "control", "treatment")
    assert (control.impressions, control.users, control.cook_rate.successes, control.click_through.successes) == (
        2,
        1,
        1,
        2,
    )
    assert control.mean_cook_rank == pytest.approx(1.5), "the cooks of ranks 1 and 2, the redelivery not counted"
    assert (treatment.impressions, treatment.users, treatment.cook_rate.successes) == (2, 2, 1)
    assert dict(treatment.models) == {"popularity": 1, "two_tower": 1}
    assert treatment.cook_rate.difference == pytest.approx(0.0) and control.cook_rate.p_value == 1.0
    assert treatment.click_through.difference == pytest.approx(-0.5)
    assert report.unmatched_attributions == 1


def test_variants_follow_the_declared_order_then_their_names() -> None:
    records = [impression("1", "zeta", 1), impression("2", "alpha", 2), impression("3", "beta", 3)]
    assert [v.variant for v in summarize(records, order=["beta", "missing"]).variants] == ["beta", "alpha", "zeta"]


def test_the_printed_report_names_the_reference_and_each_rate_with_its_interval() -> None:
    records = [impression(str(n), "control" if n % 2 else "treatment", n) for n in range(200)]
    records += [attribution(str(n), 1) for n in range(0, 200, 5)]
    text = render_text(summarize(records, order=["control", "treatment"]))
    assert "reference variant 'control'" in text
    treatment_line = next(line for line in text.splitlines() if line.startswith("treatment"))
    assert "20.00% [" in treatment_line and "pp (" in treatment_line
    assert render_text(summarize([])) == "no impressions of endpoint 'recipes' in the log\n"
