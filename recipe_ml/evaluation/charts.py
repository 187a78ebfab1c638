"""The reports' figures: ``evaluation.png`` (metrics per model), ``frontier.png``, ``experiment.png``.

matplotlib is imported when a figure is drawn, not with the module: only
``recipe-ml evaluate`` and ``recipe-ml experiment report`` draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recipe_ml.evaluation.online import ExperimentReport
from recipe_ml.evaluation.policy import PolicyFit
from recipe_ml.evaluation.results import (
    BASELINE,
    COVERAGE_TARGET,
    NDCG_TARGET,
    PERSONALISATION_TARGET,
    SHIPPED,
    ModelResult,
    Sweeps,
)


def render_chart(results: Sequence[ModelResult], path: Path) -> None:
    """Bar chart: ranking metrics (left) and coverage@10 / personalisation@10 (right) per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranking = ("ndcg@10", "ndcg@20", "recall@10", "recall@20")
    spread = ("coverage@10", "personalisation@10")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(results)
    for i, result in enumerate(results):
        left.bar(
            [j + i * width for j in range(len(ranking))], [result.metrics[m] for m in ranking], width, label=result.kind
        )
        right.bar(
            [j + i * width for j in range(len(spread))], [result.metrics[m] for m in spread], width, label=result.kind
        )
    left.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(ranking))], list(ranking))
    left.set_title("Validation ranking metrics")
    left.legend(fontsize=8)
    right.set_xticks(
        [j + width * (len(results) - 1) / 2 for j in range(len(spread))], ["coverage@10", "personalisation@10"]
    )
    right.axhline(COVERAGE_TARGET, color="grey", linestyle="--", linewidth=1)
    right.axhline(PERSONALISATION_TARGET, color="grey", linestyle=":", linewidth=1)
    right.set_title("What users see (targets dashed / dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_frontier(results: Sequence[ModelResult], sweeps: Sweeps, fit: PolicyFit | None, path: Path) -> None:
    """nDCG@20 (x popularity) against coverage@10 and personalisation@10, per source and policy; shipped marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_kind = {r.kind: r.metrics for r in results}
    baseline = by_kind[BASELINE]["ndcg@20"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    lines = list(sweeps.sources.items())
    if fit is not None:
        lines += [(f"EASE, blend {weight:g}", sweep) for weight, sweep in fit.fixed.items()]
    for ax, metric, target in zip(
        axes, ("coverage@10", "personalisation@10"), (COVERAGE_TARGET, PERSONALISATION_TARGET), strict=True
    ):
        if fit is not None:
            ax.scatter(
                [c.metrics[metric] for c in fit.candidates],
                [c.metrics["ndcg@20"] / baseline for c in fit.candidates],
                s=6,
                color="lightgrey",
                label="EASE, adaptive rules (grid)",
            )
        for label, sweep in lines:
            ax.plot(
                [m[metric] for m in sweep],
                [m["ndcg@20"] / baseline for m in sweep],
                marker="o",
                markersize=3,
                label=f"{label}, 0..10 positions",
            )
        for name, marker in ((BASELINE, "s"), ("popularity_5star", "D")):
            if name in by_kind:
                ax.scatter(
                    [by_kind[name][metric]],
                    [by_kind[name]["ndcg@20"] / baseline],
                    marker=marker,
                    color="black",
                    zorder=5,
                )
                ax.annotate(
                    name,
                    (by_kind[name][metric], by_kind[name]["ndcg@20"] / baseline),
                    fontsize=7,
                    xytext=(4, -10),
                    textcoords="offset points",
                )
        if SHIPPED in by_kind:
            shipped = by_kind[SHIPPED]
            ax.scatter(
                [shipped[metric]],
                [shipped["ndcg@20"] / baseline],
                marker="*",
                s=260,
                color="red",
                zorder=6,
                label=f"shipped: {SHIPPED}",
            )
        ax.axhline(NDCG_TARGET, color="grey", linestyle="--", linewidth=1)
        ax.axvline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(metric)
        ax.set_title(f"nDCG@20 vs {metric} (validation)")
    axes[0].set_ylabel("nDCG@20 / count popularity's")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_experiment(report: ExperimentReport, path: Path) -> None:
    """Cook rate (left) and click-through (right) per variant, with their 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = [v.variant for v in report.variants]
    for ax, title, rates in (
        (axes[0], "cook rate", [v.cook_rate for v in report.variants]),
        (axes[1], "click-through", [v.click_through for v in report.variants]),
    ):
        values = [r.value for r in rates]
        errors = [[r.value - r.low for r in rates], [r.high - r.value for r in rates]]
        ax.bar(names, values, yerr=errors, capsize=6, color="tab:blue")
        for i, (rate, result) in enumerate(zip(rates, report.variants, strict=True)):
            note = f"{rate.value:.1%}\nn={result.impressions}"
            if result.variant != report.reference:
                note += f"\np={rate.p_value:.3f}"
            ax.annotate(note, (i, rate.high), ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max([r.high for r in rates] + [0.01]) * 1.35)
        ax.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
        ax.set_title(f"{title} per variant (answers of {report.endpoint!r}, 95% CI)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
