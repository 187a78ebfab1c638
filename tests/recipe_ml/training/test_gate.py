"""The promotion gate's verdicts: nDCG@20 within the tolerance of the serving version, floors for personal models."""

from __future__ import annotations

from recipe_ml.training.gate import Candidate, GatePolicy, Serving, decide, judge

POLICY = GatePolicy(ndcg_tolerance=0.02, min_coverage=0.15, min_personalisation=0.5)
HELD_OUT = "f" * 64
GOOD = {"ndcg@20": 0.0230, "coverage@10": 0.23, "personalisation@10": 0.58}


def serving(ndcg: float, held_out: str = HELD_OUT) -> Serving:
    return Serving("recipe_two_tower:old", {**GOOD, "ndcg@20": ndcg}, held_out)


def test_a_candidate_within_the_tolerance_passes_one_beyond_it_is_refused() -> None:
    within = judge(Candidate("two_tower", {**GOOD, "ndcg@20": 0.0226}, True), serving(0.0230), HELD_OUT, POLICY)
    beyond = judge(Candidate("two_tower", {**GOOD, "ndcg@20": 0.0208}, True), serving(0.0230), HELD_OUT, POLICY)
    assert within.passed and "(-1.7%, within the tolerance of -2.0%)" in within.reasons[0]
    assert not beyond.passed
    assert beyond.reasons[0] == (
        "ndcg@20 0.0208 vs 0.0230 of the serving recipe_two_tower:old (-9.6%, beyond the tolerance of -2.0%)"
    )


def test_floors_apply_to_personal_models_only() -> None:
    flat = {"ndcg@20": 0.0231, "coverage@10": 0.002, "personalisation@10": 0.03}
    personal = judge(Candidate("two_tower", flat, True), serving(0.0230), HELD_OUT, POLICY)
    popularity = judge(Candidate("popularity", flat, False), serving(0.0230), HELD_OUT, POLICY)
    assert not personal.passed
    assert personal.reasons[1:] == (
        "coverage@10 0.0020 below the floor 0.15",
        "personalisation@10 0.0300 below the floor 0.5",
    )
    assert popularity.passed and len(popularity.reasons) == 1


def test_without_comparable_figures_only_the_floors_decide() -> None:
    first = judge(Candidate("two_tower", GOOD, True), None, HELD_OUT, POLICY)
    elsewhere = judge(Candidate("two_tower", GOOD, True), serving(0.9, held_out="0" * 64), HELD_OUT, POLICY)
    assert first.passed and "no version serving yet" in first.reasons[0]
    assert elsewhere.passed and "has no figures on this held-out data, not compared" in elsewhere.reasons[0]


def test_one_refused_kind_refuses_the_run() -> None:
    candidates = [
        Candidate("popularity", {**GOOD, "ndcg@20": 0.0240}, False),
        Candidate("two_tower", {**GOOD, "ndcg@20": 0.0100}, True),
    ]
    decision = decide(candidates, HELD_OUT, {"popularity": serving(0.0231), "two_tower": serving(0.0230)}, POLICY)
    assert not decision.promote
    assert decision.verdict("popularity").passed and not decision.verdict("two_tower").passed
    lines = decision.summary().splitlines()
    assert lines[0] == "gate: REFUSED, nothing changes"
    assert lines[1].startswith("  popularity: passed: ") and lines[2].startswith("  two_tower: REFUSED: ")
