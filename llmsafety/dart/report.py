"""Tables and figures of DART runs: violation rate per iteration, red-side metrics, categories."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from llmsafety.dart.loop import DARTResult, load_result


def _as_result(run: DARTResult | str | Path) -> DARTResult:
    return run if isinstance(run, DARTResult) else load_result(run)


def metrics_table(run: DARTResult | str | Path) -> pd.DataFrame:
    """One row per evaluated iteration; rates in percent, rounded for reading."""
    frame = _as_result(run).metrics()
    pct = [c for c in frame.columns if c.startswith(("violation", "ci_", "over_refusal", "attack_success"))]
    frame[pct] = (frame[pct] * 100).round(1)
    return frame.round(3)


def category_table(run: DARTResult | str | Path) -> pd.DataFrame:
    """Violation rate (%) per taxonomy category (rows) and evaluated iteration (columns)."""
    result = _as_result(run)
    data = {t: {c: v["violation_rate"] * 100 for c, v in ev["by_category"].items()}
            for t, ev in sorted(result.evaluations.items())}
    frame = pd.DataFrame(data)
    frame.columns = [f"iter {t}" for t in frame.columns]
    return frame.round(1)


def plot_violation(runs: Mapping[str, DARTResult | str | Path] | DARTResult | str | Path, ax=None):
    """Violation rate per iteration with 95% CI bars, one line per run (e.g. per variant)."""
    import matplotlib.pyplot as plt

    if not isinstance(runs, Mapping):
        runs = {"run": runs}
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.8))
    for k, (name, run) in enumerate(runs.items()):
        m = _as_result(run).metrics()
        if m.empty:
            continue
        x = m["iteration"] + (k - (len(runs) - 1) / 2) * 0.04
        y = m["violation_rate"] * 100
        err = np.vstack([y - m["ci_low"] * 100, m["ci_high"] * 100 - y])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel("iteration (0 = before tuning)")
    ax.set_ylabel("violation rate (%)")
    ax.set_title("Target violation rate on held-out prompts (95% CI)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend()
    fig.tight_layout()
    return fig


def plot_red_metrics(runs: Mapping[str, DARTResult | str | Path] | DARTResult | str | Path):
    """Attack success rate, novelty and self-BLEU of the Red LLM's attacks per iteration."""
    import matplotlib.pyplot as plt

    if not isinstance(runs, Mapping):
        runs = {"run": runs}
    panels = [("attack_success_rate", "attack success rate"), ("mean_novelty", "global novelty"),
              ("self_bleu", "self-BLEU (lower = more diverse)")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    for name, run in runs.items():
        result = _as_result(run)
        its = sorted(result.iterations)
        for ax, (key, label) in zip(axes, panels):
            ys = [result.iterations[t].get("red_metrics", {}).get(key, np.nan) for t in its]
            ax.plot(its, ys, marker="o", label=name)
            ax.set_title(label, fontsize=10)
            ax.set_xlabel("iteration")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def attack_success_per_step(records: list[dict], threshold: float, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per GRPO step of one red phase: attacks scored, attack success (harm >= ``threshold``) with a
    bootstrap CI over that step's attacks, mean harm and mean on-goal factor (NaN when goals were off).

    ``records``: the rows of a red phase's ``attacks.jsonl`` (each with ``step`` and ``harm``).
    """
    from llmsafety.dart.evaluate import bootstrap_ci

    rows = []
    for step in sorted({r["step"] for r in records}):
        harm = [r["harm"] for r in records if r["step"] == step and r["harm"] is not None]
        rate, lo, hi = bootstrap_ci([float(h >= threshold) for h in harm], n_boot=n_boot, seed=seed)
        on_goal = [r["on_goal"] for r in records if r["step"] == step and r.get("on_goal") is not None]
        rows.append({"step": step, "n": len(harm), "attack_success": rate, "ci_low": lo, "ci_high": hi,
                     "mean_harm": float(np.mean(harm)) if harm else float("nan"),
                     "mean_on_goal": float(np.mean(on_goal)) if on_goal else float("nan")})
    return pd.DataFrame(rows)


def plot_red_learning(tables: Mapping[str, pd.DataFrame], ax=None):
    """Attack success per GRPO step with its CI, one line per arm (tables of :func:`attack_success_per_step`)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 3.5))
    for k, (name, table) in enumerate(tables.items()):
        x = table["step"] + 0.08 * (k - (len(tables) - 1) / 2)  # side by side, so the bars do not hide each other
        ax.errorbar(x, table["attack_success"], yerr=[table["attack_success"] - table["ci_low"],
                                                      table["ci_high"] - table["attack_success"]],
                    marker="o", capsize=3, label=name)
    ax.set_ylim(0, 1)  # rates: a fixed range, so that noise does not look like an effect
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("attack success (training judge)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_category_heatmap(run: DARTResult | str | Path, ax=None):
    """Heatmap of violation rate per taxonomy category (rows) and iteration (columns)."""
    import matplotlib.pyplot as plt

    table = category_table(run)
    short = [c if c == "hh-rlhf" else "/".join(c.split("/")[-2:]) for c in table.index]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 0.3 * len(table) + 1.5))
    im = ax.imshow(table.values, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns)
    ax.set_yticks(range(len(short)), short, fontsize=8)
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            v = table.values[i, j]
            if not np.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 60 else "black")
    fig.colorbar(im, ax=ax, label="violation rate (%)")
    ax.set_title("Violations per category")
    fig.tight_layout()
    return fig


def human_table(run: DARTResult | str | Path) -> pd.DataFrame | None:
    """Human-label violation / refusal / other rates per evaluated iteration; None without labels.

    Labels come from :func:`llmsafety.dart.human_eval.attach_labels` (``RUN/human_labels.jsonl``).
    """
    from llmsafety.dart.human_eval import run_human_metrics

    return run_human_metrics(run.output_dir if isinstance(run, DARTResult) else run)


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and PNG figures into the run directory; return their paths."""
    run_dir = Path(run_dir)
    result = load_result(run_dir)
    paths = {}
    for name, fig in (("violation", plot_violation(result)), ("red_metrics", plot_red_metrics(result)),
                      ("categories", plot_category_heatmap(result))):
        paths[name] = run_dir / f"{name}.png"
        fig.savefig(paths[name], dpi=120)
    lines = [f"# DART run `{run_dir.name}`", "", "```", result.summary(), "```", "",
             metrics_table(result).to_markdown(index=False)]
    human = human_table(run_dir)
    if human is not None:
        lines += ["", "## Human labels (`human_labels.jsonl`)", "", human.to_markdown(index=False)]
    lines += ["", "![violation](violation.png)", "![red metrics](red_metrics.png)", "![categories](categories.png)"]
    paths["report"] = run_dir / "report.md"
    paths["report"].write_text("\n".join(lines) + "\n")
    return paths
