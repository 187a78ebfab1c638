"""The offline evaluation report as Markdown (``evaluation.md``): tables, targets, the policy fit.

Text only, from what ``recipe_ml.evaluation.report`` measured; the figures
are ``recipe_ml.evaluation.charts``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recipe_ml.config import get_settings
from recipe_ml.data import Interactions
from recipe_ml.evaluation.policy import COVERAGE_FLOOR, PERSONALISATION_FLOOR, PolicyFit
from recipe_ml.evaluation.protocol import METRICS
from recipe_ml.evaluation.results import ALS_GRID, BASELINE, SHIPPED, ModelResult, Sweeps, targets
from recipe_ml.ranking import PERSONAL_WINDOW
from recipe_ml.training.trainer import PERSONAL_POLICY

SHORT = {"personalisation@10": "personal.@10", "novelty@10": "novelty@10"}
"""Column titles of the report's tables."""


def recommendation(results: Sequence[ModelResult]) -> str:
    """Which model the service should rank with first, decided from the numbers.

    The shipped row first when it meets the accuracy, coverage and
    personalisation targets; otherwise the row with the best nDCG@20, with
    what the shipped row gives up said plainly.
    """
    checks = targets(results)
    lines = [
        f"- {what}: {value:.3f}"
        + ("x" if "vs" in what else "")
        + f" (target {goal}): "
        + ("met" if met else "**not met**")
        for what, value, goal, met in checks
    ]
    best = max(results, key=lambda r: r.metrics["ndcg@20"])
    lines.append(f"- Highest nDCG@20: **{best.kind}** ({best.metrics['ndcg@20']:.4f}).")
    if all(met for _, _, _, met in checks[:3]):
        lines.append(
            f"- Serve **{SHIPPED}** first: as accurate as popularity while the lists differ from user to user."
        )
    elif best.kind == SHIPPED:
        lines.append(f"- {SHIPPED} ranks best but misses a target above: the policy needs refitting.")
    else:
        lines.append(f"- Serve **{best.kind}** first for accuracy; {SHIPPED} misses a target above.")
    return "\n".join(lines)


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.3f}x" if baseline > 0 else "n/a"


def _metric_cells(metrics: dict[str, float]) -> str:
    return " | ".join(f"{metrics[m]:.4f}" for m in METRICS)


def _table_head(*columns: str) -> list[str]:
    """The header and rule lines of a Markdown table."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _metric_titles() -> list[str]:
    return [SHORT.get(m, m) for m in METRICS]


def _quartile_lines(results: Sequence[ModelResult]) -> list[str]:
    baseline = next(r for r in results if r.kind == BASELINE).evaluation.quartiles
    lines = _table_head(
        "model",
        "quartile (training ratings)",
        "ndcg@20",
        "vs popularity",
        "recall@20",
        "coverage@10",
        "personal.@10",
        "novelty@10",
    )
    for r in results:
        for q, (m, base) in enumerate(zip(r.evaluation.quartiles, baseline, strict=True)):
            span = f"Q{q + 1} ({int(m['min_ratings'])}-{int(m['max_ratings'])})"
            lines.append(
                f"| {r.kind} | {span} | {m['ndcg@20']:.4f} | {_ratio(m['ndcg@20'], base['ndcg@20'])} | "
                f"{m['recall@20']:.4f} | {m['coverage@10']:.4f} | {m['personalisation@10']:.3f} | "
                f"{m['novelty@10']:.3f} |"
            )
    return lines


def _sweep_lines(sweeps: Sweeps, fit: PolicyFit | None, baseline: float) -> list[str]:
    lines = _table_head(
        "source of the personal picks",
        "personal positions",
        "ndcg@20",
        "vs popularity",
        "coverage@10",
        "personal.@10",
        "novelty@10",
    )
    rows = list(sweeps.sources.items())
    if fit is not None:
        rows += [(f"EASE, blend weight {weight:g}", sweep) for weight, sweep in fit.fixed.items()]
    for label, sweep in rows:
        for m in sweep:
            if int(m["positions"]) % 2 == 1 and int(m["positions"]) != 1:
                continue  # 0, 1, 2, 4, 6, 8, 10: enough to see the shape
            lines.append(
                f"| {label} | {int(m['positions'])} | {m['ndcg@20']:.4f} | {_ratio(m['ndcg@20'], baseline)} | "
                f"{m['coverage@10']:.4f} | {m['personalisation@10']:.3f} | {m['novelty@10']:.3f} |"
            )
    return lines


def _policy_lines(fit: PolicyFit | None, baseline: float) -> list[str]:
    if fit is None:
        return ["No personal scorer was evaluated."]
    best = fit.best
    p = best.policy
    shipped = PERSONAL_POLICY
    same = shipped == p
    counts = np.bincount(best.positions, minlength=PERSONAL_WINDOW + 1)
    spread = ", ".join(f"{n}: {c / counts.sum():.0%}" for n, c in enumerate(counts) if c)
    return [
        f"Grid: blend weights {sorted(fit.fixed)}, positions = round(intercept + per_doubling x log2(history length)), "
        f"{len(fit.candidates)} rules. Kept: the best nDCG@20 with personalisation@10 >= {PERSONALISATION_FLOOR} "
        f"and coverage@10 >= {COVERAGE_FLOOR:.0%} (a margin over the targets).",
        "",
        f"- Fitted: blend weight **{p.blend_weight:g}**, intercept **{p.intercept:g}**, per doubling "
        f"**{p.per_doubling:g}**: nDCG@20 {best.metrics['ndcg@20']:.4f} ({_ratio(best.metrics['ndcg@20'], baseline)}), "
        f"coverage@10 {best.metrics['coverage@10']:.1%}, personalisation@10 {best.metrics['personalisation@10']:.3f}.",
        f"- Personal positions per user under it: {spread}.",
        "- Two-fold check (fit on half the users, measure on the other half): "
        + ", ".join(f"{g:.3f}x" for g in fit.held_out_gain)
        + " popularity's nDCG@20 on the held-out half. The halves differ by more than the policies do: "
        "gains of one or two percent are within noise.",
        f"- Shipped (`recipe_ml.training.trainer.PERSONAL_POLICY`): {shipped.as_dict()}: "
        + ("the fitted values." if same else "**differs from this fit**; update it from the line above."),
    ]


def render_markdown(
    results: Sequence[ModelResult],
    curve: Sequence[dict[str, float]],
    sweeps: Sweeps,
    fit: PolicyFit | None,
    oracle: dict[str, float],
    als_grid: Sequence[ModelResult],
    full_seconds: dict[str, float] | None,
    splits: dict[str, Interactions],
    note: str,
) -> str:
    """The report: metrics tables, targets, personal scorers, policy fit, Two-Tower curve, ALS grid, training time."""
    baseline = next(r for r in results if r.kind == BASELINE).metrics["ndcg@20"]
    diversity = get_settings().mmr_diversity_weight
    train, validation = splits["train"], splits["validation"]
    lines = [
        "# Offline evaluation",
        "",
        f"Fitted on train ({len(train):,} ratings), evaluated on validation ({len(validation):,} ratings, "
        f"{len(train.users):,} users, {len(train.items):,} recipes). Every validation rating is a positive; "
        "all recipes are ranked; recipes rated in train are excluded. Recall@k = hits / |relevant| "
        "(the published protocol); nDCG@k with binary gains; coverage@10 = distinct recipes in all "
        "users' top 10 / catalogue; personalisation@10 = 1 - mean share of recipes two users' top 10 have "
        "in common (20,000 seeded pairs); novelty@10 = mean popularity percentile of the recommended recipes "
        f"counted from the most popular (0 = the most popular recipe). {note}",
        "",
        *_table_head("model", *_metric_titles(), "nDCG@20 vs popularity", "fit time on train (s)"),
        *(
            f"| {r.kind} | {_metric_cells(r.metrics)} | {_ratio(r.metrics['ndcg@20'], baseline)} | {r.seconds:.1f} |"
            for r in results
        ),
        "",
        f"`{BASELINE}` is the issue's baseline (interaction counts); `popularity_5star`, the shipped "
        "popularity model, counts 5-star ratings (total count as tie-break), which is also the Two-Tower's "
        "recipe bias. `two_tower` is the Two-Tower as a model trained without a personal scorer serves it "
        "(today's policy: its last top-10 position goes to its best recipe by the towers' dot product). "
        f"`{SHIPPED}` is what ships: the Two-Tower's ranking plus the EASE scores (blend weight), and the "
        "last top-10 positions, as many as the fitted policy gives the user's history length, filled with "
        "EASE's best recipes. Its fit time is the Two-Tower's plus the EASE solve.",
        "",
        "## Targets (shipped default, validation)",
        "",
        recommendation(results),
        "",
        "## Per user-activity quartile",
        "",
        "Users in four equal groups by number of training ratings (ties split by user index); "
        "personalisation is measured between users of the same quartile.",
        "",
        *_quartile_lines(results),
        "",
        f"### As served (MMR diversity {diversity}, the serving default)",
        "",
        *_table_head("model", *_metric_titles()),
        *(f"| {r.kind} | {_metric_cells(r.served)} |" for r in results if r.served is not None),
        "",
        "Popularity is missing: its one-dimensional vectors give MMR nothing to diversify, so it is served as above.",
        "",
        "## Personal scorers compared",
        "",
        "The same head (the Two-Tower's ranking: the 5-star prior and a small weight of the towers), the last N "
        "of the top-10 positions given to the source's best recipes, N fixed for every user, for each candidate "
        "source of the personal picks; EASE also with its scores blended into the head (blend weight > 0). "
        "`frontier.png` plots all of them with the adaptive rules of the fit below.",
        "",
        *_sweep_lines(sweeps, fit, baseline),
        "",
        "## Personal policy (fitted on validation)",
        "",
        *_policy_lines(fit, baseline),
        "",
        "## The ceiling of popularity",
        "",
        f"Popularity counted on the validation ratings themselves (an oracle, not a model) reaches nDCG@20 "
        f"{oracle['ndcg@20']:.4f} ({_ratio(oracle['ndcg@20'], baseline)} popularity from train) "
        f"and coverage@10 {oracle['coverage@10']:.4f}. A global ranking can hardly do better, so a gain "
        "beyond that has to come from personal signal, which is weak in this data.",
        "",
        "## Hyper-parameters",
        "",
        *(f"- {r.kind}: `{r.hyper_parameters}`" for r in results),
        "",
        "## Two-Tower per epoch (validation)",
        "",
        "Without a personal scorer (today's policy).",
        "",
        *_table_head("epoch", *_metric_titles()),
        *(f"| {int(c['epoch'])} | {_metric_cells(c)} |" for c in curve),
    ]
    if als_grid:
        keys = list(ALS_GRID)
        lines += [
            "",
            "## ALS tuning (128 factors, validation)",
            "",
            *_table_head(*keys, "nDCG@20", "Recall@20", "coverage@10"),
            *(
                "| "
                + " | ".join(str(r.hyper_parameters[k]) for k in keys)
                + f" | {r.metrics['ndcg@20']:.4f} | {r.metrics['recall@20']:.4f} | {r.metrics['coverage@10']:.4f} |"
                for r in als_grid
            ),
        ]
    if full_seconds is not None:
        total = sum(full_seconds.values())
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in full_seconds.items())
        lines += [
            "",
            "## Full training time",
            "",
            f"All models on train + validation: **{total:.1f}s** ({parts}); target: well under 180s.",
        ]
    return "\n".join(lines) + "\n"
