"""Growth stage plots: accuracy vs size across rounds, widths per unit, splitting spectra."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from kws.plotting import pyplot, save_png
from kws.stats import mean_interval


def plot_growth(history: list[dict], out_dir: str | Path) -> list[Path]:
    """Writes accuracy_vs_params.png, widths.png and spectra.png under `out_dir`."""
    if not history:
        return []
    plt, out_dir = pyplot(), Path(out_dir)
    paths = []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    params = [h["params"] for h in history]
    ax.plot(params, [100 * h["val_accuracy"] for h in history], "o-", label="validation")
    ax.plot(params, [100 * h["test_accuracy"] for h in history], "s--", label="test")
    for h in history:
        ax.annotate(str(h["round"]), (h["params"], 100 * h["test_accuracy"]), fontsize=8)
    ax.set_xlabel("parameters")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy across growth rounds")
    ax.legend()
    paths.append(save_png(fig, out_dir / "accuracy_vs_params.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, h in enumerate(history):
        ax.plot(
            range(len(h["widths"])),
            h["widths"],
            "o-",
            label=f"round {h['round']}",
            alpha=0.4 + 0.6 * (k + 1) / len(history),
        )
    ax.set_xlabel("splittable unit (in forward order)")
    ax.set_ylabel("channels")
    ax.legend(fontsize=8)
    paths.append(save_png(fig, out_dir / "widths.png"))

    spectra = [h for h in history if h.get("spectrum")]
    if spectra:
        fig, axes = plt.subplots(1, len(spectra), figsize=(3.2 * len(spectra), 3.2), squeeze=False)
        for ax, h in zip(axes[0], spectra, strict=True):
            for unit, values in h["spectrum"].items():
                ax.plot(sorted(values), ".", markersize=3, label=f"unit {unit}")
            ax.axhline(0, color="gray", lw=0.5)
            ax.set_title(f"before round {h['round']}")
            ax.set_xlabel("neuron (sorted)")
        axes[0][0].set_ylabel("splitting index")
        axes[0][0].legend(fontsize=7)
        paths.append(save_png(fig, out_dir / "spectra.png"))
    return paths


def plot_comparison(records: list[dict], path: str | Path) -> Path:
    """The splitting paper's Fig. 4 on our data: each method's mean test accuracy against its
    mean parameters per budget, with 95% intervals over seeds as error bars."""
    plt = pyplot()
    cells = defaultdict(list)
    for r in records:
        cells[(r["method"], r["budget_params"])].append(r)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(r["method"] for r in records):
        budgets = sorted(b for m, b in cells if m == method)
        xs, ys, errs = [], [], []
        for budget in budgets:
            rows = cells[(method, budget)]
            acc = mean_interval([r["test_accuracy"] for r in rows])
            xs.append(sum(r["params"] for r in rows) / len(rows))
            ys.append(100 * acc.mean)
            errs.append(100 * acc.half_width)
        style = "o-" if method == "splitting" else ".--"
        ax.errorbar(xs, ys, yerr=errs, fmt=style, capsize=3, label=method,
                    linewidth=2 if method == "splitting" else 1)  # fmt: skip
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs size (mean over seeds, 95% intervals)")
    ax.legend(fontsize=8)
    return save_png(fig, Path(path))
