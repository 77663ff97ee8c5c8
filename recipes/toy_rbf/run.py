"""Growth stage, toy scale: the splitting paper's Figure 1 on a 1-D RBF network.

Liu, Wu, Wang 2019, section 3 "Toy RBF Neural Networks" and Figure 1: grow an RBF network
from one neuron to `--max-neurons` by Algorithm 1 (train to a plateau, split the neuron with
the most negative splitting index along +- eps * v_min, output weight halved), then write

    DIR/fig1a_function.png     true vs learned function at the final size
    DIR/fig1b_eigen_loss.png   splitting index vs realized loss decrease, every neuron at m - 1
    DIR/fig1c_angle.png        loss decrease vs angle between split direction and v_min
    DIR/fig1d_training.png     training loss of splitting vs four rivals, same iterations
    DIR/summary.json           eigen_loss_r2, best_angle_deg, final losses, all plotted data

Usage: python recipes/toy_rbf/run.py --out DIR [--seed 0]. The model, splitting matrix and
methods live in `rbf_splitting.py` next to this file. Deterministic given --seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rbf_splitting import (
    TARGET_KINDS,
    X_RANGE,
    Net,
    Trace,
    TrainConfig,
    angle_sweep,
    eigen_vs_decrease,
    make_data,
    predict,
    progressive,
    r_squared,
    random_neurons,
    train,
)

from kws.errors import UserError
from kws.io import atomic_write_json
from kws.plotting import pyplot, save_png

METHODS = ("splitting", "random_split", "random_new", "boosting", "scratch")
LABELS = {
    "splitting": "splitting (ours)",
    "random_split": "random split",
    "random_new": "new random neuron",
    "boosting": "gradient boosting (Frank-Wolfe)",
    "scratch": "scratch, all neurons",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--seed", type=int, default=0, help="target, data, inits and rival draws")
    p.add_argument("--target", choices=TARGET_KINDS, default="positive", help="bump signs")
    p.add_argument("--max-neurons", type=int, default=8, help="final size (paper: 8)")
    p.add_argument("--points", type=int, default=1000, help="training points x in [-5, 5]")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (full batch)")
    p.add_argument("--max-iters", type=int, default=d.max_iters, help="cap on one phase")
    p.add_argument("--min-iters", type=int, default=d.min_iters, help="floor on one phase")
    p.add_argument("--window", type=int, default=d.window_iters, help="plateau window (iters)")
    p.add_argument("--plateau-tol", type=float, default=d.plateau_tol, help="gain per window")
    p.add_argument("--warmup", type=int, default=d.warmup_iters, help="LR warm-up per phase")
    p.add_argument("--eps", type=float, default=0.01, help="split step used for growth")
    p.add_argument("--probe-eps", type=float, default=0.001, help="split step for (b) and (c)")
    p.add_argument("--angles", type=int, default=37, help="angles in [0, 180] deg for (c)")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """UserError naming the option, its value and the fix."""
    rules = [
        ("--max-neurons", args.max_neurons, args.max_neurons >= 2, "at least 2"),
        ("--points", args.points, args.points >= 10, "at least 10"),
        ("--lr", args.lr, args.lr > 0, "positive"),
        ("--min-iters", args.min_iters, args.min_iters >= 1, "at least 1"),
        ("--max-iters", args.max_iters, args.max_iters >= args.min_iters, "at least --min-iters"),
        ("--window", args.window, args.window >= 1, "at least 1"),
        ("--plateau-tol", args.plateau_tol, args.plateau_tol >= 0, "0 or more"),
        ("--warmup", args.warmup, args.warmup >= 0, "0 or more"),
        ("--eps", args.eps, args.eps > 0, "positive"),
        ("--probe-eps", args.probe_eps, args.probe_eps > 0, "positive"),
        ("--angles", args.angles, args.angles >= 3, "at least 3"),
    ]
    for name, value, ok, need in rules:
        if not ok:
            raise UserError(f"{name} is {value}; it must be {need}")


def run_methods(args, x, y) -> tuple[dict, dict, Net]:
    """Splitting (phases to the plateau rule), then its rivals on the same iteration schedule.

    Returns the final nets, their traces, and the splitting net just before its last growth.
    """
    cfg = TrainConfig(
        args.lr, args.max_iters, args.min_iters, args.window, args.plateau_tol, args.warmup
    )
    start = random_neurons(np.random.default_rng([args.seed, 5]), 1)
    at_probe: list[Net] = []

    def probe(net: Net) -> None:  # keep the trained net just before growing to the last size
        if net.size == args.max_neurons - 1:
            at_probe.append(net.clone())

    common = dict(max_neurons=args.max_neurons, eps=args.eps, seed=args.seed)
    nets, traces = {}, {}
    nets["splitting"], traces["splitting"] = progressive(
        "splitting", start, x, y, cfg, probe=probe, **common
    )
    schedule = traces["splitting"].phase_lengths
    for method in ("random_split", "random_new", "boosting"):
        nets[method], traces[method] = progressive(
            method, start, x, y, cfg, schedule=schedule, **common
        )
    scratch_init = random_neurons(np.random.default_rng([args.seed, 4]), args.max_neurons)
    traces["scratch"] = Trace()
    nets["scratch"] = train(scratch_init, x, y, cfg, traces["scratch"], iters=sum(schedule))
    return nets, traces, at_probe[0]


def summarize(args, x, y, traces: dict, probed: Net) -> dict:
    """Figures 1b and 1c on `probed` (m = max - 1), and the numbers summary.json carries."""
    fig_b = eigen_vs_decrease(probed, x, y, args.probe_eps)
    fig_b["large_eps"] = 10 * args.probe_eps  # where the O(eps^4) remainder shows
    fig_b["decrease_at_large_eps"] = eigen_vs_decrease(probed, x, y, fig_b["large_eps"])["decrease"]
    neg_lambda = -np.asarray(fig_b["eigenvalues"])
    theory = args.probe_eps**2 / 2 * neg_lambda
    fig_c = angle_sweep(probed, x, y, args.probe_eps, np.linspace(0, 180, args.angles))
    best = float(fig_c["angles_deg"][int(np.argmax(fig_c["decrease"]))])
    grown = traces["splitting"]
    return {
        # +v and -v give the same pair of off-springs, so the angle is reported modulo 180
        "best_angle_deg": best % 180.0,
        "eigen_loss_r2": r_squared(neg_lambda, fig_b["decrease"], fit=True),
        "eigen_loss_slope_over_theory": float(np.polyfit(theory, fig_b["decrease"], 1)[0]),
        "eigen_loss_theory_r2": r_squared(theory, fig_b["decrease"], fit=False),
        "eigen_loss_theory_r2_at_large_eps": r_squared(
            fig_b["large_eps"] ** 2 / 2 * neg_lambda, fig_b["decrease_at_large_eps"], fit=False
        ),
        "final_loss": {m: traces[m].losses[-1] for m in METHODS},
        "total_iterations": len(grown.losses),
        "phase_iterations": grown.phase_lengths,
        "split_indices": grown.split_indices,
        # realized / predicted (-eps^2 / 2 * lambda) loss decrease of each growth split
        "split_realized_over_predicted": [
            dec / (-(args.eps**2) / 2 * lam) if lam != 0 else float("nan")
            for dec, lam in zip(grown.split_decrease, grown.split_indices)
        ],
        "fig1b": fig_b,
        "fig1c": fig_c,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def run(args: argparse.Namespace) -> dict:
    """Every method, the probes of (b) and (c), the four PNGs and summary.json -> the summary."""
    x, y, target = make_data(args.seed, args.points, args.target)
    nets, traces, probed = run_methods(args, x, y)
    summary = summarize(args, x, y, traces, probed)
    plot_all(args, target, nets, traces, summary)
    atomic_write_json(args.out / "summary.json", summary)
    return summary


def plot_all(args, target: Net, nets: dict, traces: dict, summary: dict) -> None:
    """The four panels of Figure 1 as PNGs in `args.out`."""
    plt = pyplot()
    grid = torch.linspace(*X_RANGE, 800, dtype=target.w.dtype)
    with torch.no_grad():
        true_f, fit_f = predict(target, grid), predict(nets["splitting"], grid)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(grid, true_f, "k-", lw=2, label="true function")
    ax.plot(grid, fit_f, "r--", lw=1.5, label=f"splitting, m = {args.max_neurons}")
    ax.set(xlabel="x", ylabel="f(x)", title="(a) true vs learned")
    ax.legend(fontsize=8)
    save_png(fig, args.out / "fig1a_function.png")

    fig_b = summary["fig1b"]
    neg_lambda = -np.asarray(fig_b["eigenvalues"])
    line = np.linspace(min(0.0, neg_lambda.min()), neg_lambda.max(), 50)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(
        line, args.probe_eps**2 / 2 * line, "k-", lw=1, label=r"$\epsilon^2/2 \cdot (-\lambda)$"
    )
    ax.plot(neg_lambda, fig_b["decrease"], "ro", label=f"realized, eps = {args.probe_eps:g}")
    ax.set(
        xlabel=r"$-\lambda_{min}$ (splitting index)",
        ylabel="loss decrease",
        title=f"(b) every neuron at m = {args.max_neurons - 1}: "
        f"R$^2$ = {summary['eigen_loss_r2']:.4f}",
    )
    ax.legend(fontsize=8)
    save_png(fig, args.out / "fig1b_eigen_loss.png")

    fig_c = summary["fig1c"]
    angles = np.deg2rad(fig_c["angles_deg"])
    theory = (
        -(args.probe_eps**2)
        / 2
        * (fig_c["lambda_min"] * np.cos(angles) ** 2 + fig_c["lambda_other"] * np.sin(angles) ** 2)
    )
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(fig_c["angles_deg"], theory, "k-", lw=1, label="theory")
    ax.plot(fig_c["angles_deg"], fig_c["decrease"], "ro", ms=4, label="realized")
    ax.set(
        xlabel=r"angle to $v_{min}$ (degrees)",
        ylabel="loss decrease",
        title=f"(c) neuron {fig_c['neuron']} at m = {args.max_neurons - 1}",
    )
    ax.legend(fontsize=8)
    save_png(fig, args.out / "fig1c_angle.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in METHODS:
        ax.semilogy(traces[method].losses, lw=1.2, label=LABELS[method])
    for at in traces["splitting"].growth_at:
        ax.axvline(at, color="0.85", lw=0.6, zorder=0)
    ax.set(
        xlabel="iteration (full-batch Adam)",
        ylabel="training loss",
        title="(d) training (grey: growth steps)",
    )
    ax.legend(fontsize=8)
    save_png(fig, args.out / "fig1d_training.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
        torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and deterministic
        started = time.perf_counter()
        summary = run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    losses = ", ".join(f"{m} {v:.3g}" for m, v in summary["final_loss"].items())
    print(
        f"wrote {args.out}: eigen_loss_r2 {summary['eigen_loss_r2']:.4f}, best angle "
        f"{summary['best_angle_deg']:.0f} deg; final loss {losses} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
