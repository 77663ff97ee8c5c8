"""Growth stage, toy scale: splitting steepest descent on a 1-D RBF network (paper's Figure 1).

Liu, Wu, Wang 2019, "Splitting Steepest Descent for Growing Neural Architectures", sections
2.1-2.2 (splitting matrix, Theorems 2.3-2.4, Algorithm 1) and section 3 "Toy RBF Neural
Networks". The network is

    f(x) = sum_i w_i * sigma(theta_i, x),   sigma(theta, x) = exp(-(theta_1 * x + theta_2)^2 / 2)

with the squared loss L = mean((f(x) - y)^2) / 2. Neuron i's splitting matrix (eq. 7) is

    S_i = mean_x[(f(x) - y) * w_i * d2 sigma / d theta2],
    d2 sigma / d theta2 = (z^2 - 1) * sigma * [x, 1]^T [x, 1],   z = theta_1 * x + theta_2,

and splitting neuron i into theta_i +- eps * v with output weights w_i / 2 changes the loss by
eps^2 / 2 * v^T S_i v + O(eps^4) (the symmetric split cancels the odd orders). The paper's
Appendix B.1 (its exact toy setting) is not in our copy nor in the authors' public code, so the
target is our own choice: an RBF network of `TARGET_NEURONS` well-separated bumps whose signs
`target_network` sets (all positive by default).

Everything is float64 and full-batch; parameters are plain tensors `w (m,)`, `theta (m, 2)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from kws.errors import UserError
from kws.growth.eigen import min_eigenpairs

DTYPE = torch.float64
X_RANGE = (-5.0, 5.0)
TARGET_NEURONS = 10
TARGET_KINDS = ("positive", "mixed", "alternating")
GROWTH_METHODS = ("splitting", "random_split", "random_new", "boosting")


@dataclass
class Net:
    """An RBF network: output weights `w (m,)` and neuron parameters `theta (m, 2)`."""

    w: torch.Tensor
    theta: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.w.shape[0])

    def clone(self) -> Net:
        return Net(self.w.detach().clone(), self.theta.detach().clone())


@dataclass
class Trace:
    """A training history: loss before every iteration, and iterations where the net grew."""

    losses: list[float] = field(default_factory=list)
    growth_at: list[int] = field(default_factory=list)
    phase_lengths: list[int] = field(default_factory=list)
    split_indices: list[float] = field(default_factory=list)
    split_decrease: list[float] = field(default_factory=list)


@dataclass
class TrainConfig:
    """Full-batch Adam; a phase ends on a plateau (relative gain over `window_iters` below
    `plateau_tol`) or at `max_iters`, whichever comes first. Each phase warms the learning rate
    up linearly over `warmup_iters`: a fresh Adam's first steps are lr * sign(grad) for every
    parameter, which at a plateau would undo the training before the split (issue 11 saw the
    same with cold restarts at peak LR)."""

    lr: float = 0.02
    max_iters: int = 3000
    min_iters: int = 200
    window_iters: int = 100
    plateau_tol: float = 1e-4
    warmup_iters: int = 100


def activations(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sigma(theta_i, x_n) for `theta (m, 2)` and `x (n,)` -> `(n, m)`."""
    z = x[:, None] * theta[None, :, 0] + theta[None, :, 1]
    return torch.exp(-0.5 * z * z)


def predict(net: Net, x: torch.Tensor) -> torch.Tensor:
    """f(x) for `x (n,)` -> `(n,)`."""
    return activations(net.theta, x) @ net.w


def loss(net: Net, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Half mean squared error (scalar); its derivative in f is the residual f - y."""
    return 0.5 * (predict(net, x) - y).square().mean()


def splitting_matrices(net: Net, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Closed-form splitting matrix of every neuron (eq. 7) -> `(m, 2, 2)`."""
    with torch.no_grad():
        residual = predict(net, x) - y  # dL/df per example, up to the 1/n of the mean
        z = x[:, None] * net.theta[None, :, 0] + net.theta[None, :, 1]  # (n, m)
        curvature = (z * z - 1.0) * torch.exp(-0.5 * z * z)  # d2 sigma / dz2, (n, m)
        coef = residual[:, None] * curvature * net.w[None, :] / x.shape[0]  # (n, m)
        grad_z = torch.stack([x, torch.ones_like(x)], dim=1)  # dz/dtheta, (n, 2)
        outer = grad_z[:, :, None] * grad_z[:, None, :]  # (n, 2, 2)
        return torch.einsum("nm,nij->mij", coef, outer)


def split(net: Net, index: int, direction: torch.Tensor, eps: float) -> Net:
    """Replace neuron `index` by theta +- eps * direction, each with output weight w / 2.

    The two off-springs sit at `index` and at the end, so other neurons keep their order.
    """
    w, theta = net.w.detach().clone(), net.theta.detach().clone()
    base = theta[index].clone()
    half = w[index] / 2
    w[index] = half
    theta[index] = base + eps * direction
    return Net(
        torch.cat([w, half.reshape(1)]),
        torch.cat([theta, (base - eps * direction).reshape(1, 2)]),
    )


def target_network(seed: int, kind: str = "positive") -> Net:
    """Our stand-in for the paper's target: `TARGET_NEURONS` bumps spread over the data range.

    Centres evenly spaced over [-4, 4] with jitter (no two bumps coincide), widths 0.5-1.5,
    output weight magnitudes 0.5-1.5. `kind` sets the signs: "positive" (all up: a positive
    mixture, the particle picture of section 2.3), "mixed" (each up with probability 3/4) or
    "alternating" (up, down, up, ...).
    """
    if kind not in TARGET_KINDS:
        raise UserError(f"target kind is {kind!r}; use one of {', '.join(TARGET_KINDS)}")
    rng = np.random.default_rng([seed, 1])
    lo, hi = X_RANGE
    slots = np.linspace(lo + 1.0, hi - 1.0, TARGET_NEURONS)
    centres = slots + rng.uniform(-0.25, 0.25, TARGET_NEURONS) * (slots[1] - slots[0])
    widths = rng.uniform(0.5, 1.5, TARGET_NEURONS)
    magnitudes = rng.uniform(0.5, 1.5, TARGET_NEURONS)
    signs = {
        "positive": np.ones(TARGET_NEURONS),
        "mixed": np.where(rng.uniform(size=TARGET_NEURONS) < 0.75, 1.0, -1.0),
        "alternating": np.where(np.arange(TARGET_NEURONS) % 2 == 0, 1.0, -1.0),
    }[kind]
    theta = np.stack([1.0 / widths, -centres / widths], axis=1)
    return Net(torch.tensor(signs * magnitudes, dtype=DTYPE), torch.tensor(theta, dtype=DTYPE))


def make_data(
    seed: int, num_points: int, kind: str = "positive"
) -> tuple[torch.Tensor, torch.Tensor, Net]:
    """Noise-free samples `x (n,)` uniform over `X_RANGE`, `y = target(x)`, and the target."""
    target = target_network(seed, kind)
    rng = np.random.default_rng([seed, 2])
    x = torch.tensor(np.sort(rng.uniform(*X_RANGE, num_points)), dtype=DTYPE)
    with torch.no_grad():
        y = predict(target, x)
    return x, y, target


def random_neurons(rng: np.random.Generator, count: int) -> Net:
    """Random neurons: centre uniform over the data, width 0.5-2, output weight N(0, 0.5^2)."""
    centres = rng.uniform(*X_RANGE, count)
    scales = 1.0 / rng.uniform(0.5, 2.0, count)
    theta = np.stack([scales, -centres * scales], axis=1)
    w = rng.normal(0.0, 0.5, count)
    return Net(torch.tensor(w, dtype=DTYPE), torch.tensor(theta, dtype=DTYPE))


def concat(a: Net, b: Net) -> Net:
    return Net(torch.cat([a.w, b.w]).detach(), torch.cat([a.theta, b.theta]).detach())


def train(
    net: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    trace: Trace,
    iters: int | None = None,
    frozen: int = 0,
) -> Net:
    """Full-batch Adam (fresh state: the parameter set just changed) on all but the first
    `frozen` neurons. Runs exactly `iters` iterations if given, else to the plateau rule.
    Appends every iteration's loss and the phase length to `trace`; returns the trained net.
    """
    w = net.w.detach().clone().requires_grad_(True)
    theta = net.theta.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w, theta], lr=cfg.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / max(cfg.warmup_iters, 1))
    )
    cap = cfg.max_iters if iters is None else iters
    start = len(trace.losses)
    for step in range(cap):
        opt.zero_grad(set_to_none=False)
        value = loss(Net(w, theta), x, y)
        value.backward()
        if frozen:  # zero gradients keep Adam's moments, hence the updates, exactly zero
            w.grad[:frozen] = 0.0
            theta.grad[:frozen] = 0.0
        opt.step()
        warmup.step()
        trace.losses.append(value.item())
        if iters is None and step + 1 >= max(cfg.min_iters, cfg.window_iters + 1):
            before = trace.losses[-1 - cfg.window_iters]
            if before - trace.losses[-1] < cfg.plateau_tol * before:
                break
    trace.phase_lengths.append(len(trace.losses) - start)
    return Net(w.detach(), theta.detach())


def min_pairs(net: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Splitting index `(m,)` and splitting gradient `(m, 2)` of every neuron."""
    return min_eigenpairs(splitting_matrices(net, x, y))


def grow_step(method: str, net: Net, x, y, eps: float, rng: np.random.Generator, trace: Trace):
    """One growth step of `method` from a trained `net` -> (grown net, frozen neuron count)."""
    if method == "splitting":
        lam, vec = min_pairs(net, x, y)
        # Algorithm 1 with m_* = 1. Its threshold lambda_* <= 0 would stop growth early; to
        # reach the figure's size we split even a non-negative index (split_indices shows it)
        index = int(torch.argmin(lam))
        grown = split(net, index, vec[index], eps)
        with torch.no_grad():
            trace.split_decrease.append((loss(net, x, y) - loss(grown, x, y)).item())
        trace.split_indices.append(float(lam[index]))
        return grown, 0
    if method == "random_split":
        angle = rng.uniform(0.0, 2 * math.pi)
        direction = torch.tensor([math.cos(angle), math.sin(angle)], dtype=DTYPE)
        return split(net, int(rng.integers(net.size)), direction, eps), 0
    if method == "random_new":
        return concat(net, random_neurons(rng, 1)), 0
    if method == "boosting":
        return concat(net, fit_residual_neuron(net, x, y)), net.size
    raise ValueError(f"unknown growth method {method!r}")


def fit_residual_neuron(net: Net, x: torch.Tensor, y: torch.Tensor) -> Net:
    """Frank-Wolfe / gradient-boosting step: the single neuron best fitting the residual.

    A grid over centres (81 over the data range) and widths (12, log-spaced 0.15-3) with the
    least-squares output weight in closed form; `train` then refines it with the rest frozen.
    """
    with torch.no_grad():
        residual = y - (predict(net, x) if net.size else torch.zeros_like(y))
        centres = torch.linspace(*X_RANGE, 81, dtype=DTYPE)
        scales = 1.0 / torch.logspace(math.log10(0.15), math.log10(3.0), 12, dtype=DTYPE)
        grid_s, grid_c = torch.meshgrid(scales, centres, indexing="ij")
        theta = torch.stack([grid_s.flatten(), -(grid_c * grid_s).flatten()], dim=1)
        feats = activations(theta, x)  # (n, candidates)
        proj, norm = residual @ feats, feats.square().sum(0)
        best = int(torch.argmax(proj.square() / norm))  # largest drop of the squared residual
        return Net((proj[best] / norm[best]).reshape(1), theta[best].reshape(1, 2))


def progressive(
    method: str,
    start: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    max_neurons: int,
    eps: float,
    seed: int,
    schedule: list[int] | None = None,
    probe=None,
) -> tuple[Net, Trace]:
    """Grow from `start` (or from nothing for boosting) to `max_neurons`, training between steps.

    Without `schedule` every phase trains to the plateau rule (Algorithm 1, step 1); with it,
    phase k trains exactly `schedule[k]` iterations, so rivals get the same budget and growth
    points. `probe(net)` is called on the trained net just before each growth step.
    """
    rng = np.random.default_rng([seed, 3, GROWTH_METHODS.index(method)])
    trace = Trace()
    net, frozen = start.clone(), 0
    if method == "boosting":
        net = fit_residual_neuron(Net(start.w[:0], start.theta[:0]), x, y)
    phase = 0
    while True:
        iters = None if schedule is None else schedule[phase]
        net = train(net, x, y, cfg, trace, iters=iters, frozen=frozen)
        phase += 1
        if net.size >= max_neurons:
            return net, trace
        if probe is not None:
            probe(net)
        net, frozen = grow_step(method, net, x, y, eps, rng, trace)
        trace.growth_at.append(len(trace.losses))


def eigen_vs_decrease(net: Net, x, y, eps: float) -> dict[str, list[float]]:
    """Figure 1b: every neuron's splitting index and the realized loss decrease of its split.

    Theorem 2.4 predicts decrease = -eps^2 / 2 * lambda_min (+ O(eps^4)).
    """
    lam, vec = min_pairs(net, x, y)
    with torch.no_grad():
        base = loss(net, x, y).item()
        decrease = [base - loss(split(net, i, vec[i], eps), x, y).item() for i in range(net.size)]
    return {"eigenvalues": lam.tolist(), "decrease": decrease}


def angle_sweep(net: Net, x, y, eps: float, angles_deg: np.ndarray) -> dict[str, object]:
    """Figure 1c: loss decrease of splitting the neuron with the most negative index along
    cos(a) * v_min + sin(a) * v_other, v_other the other eigenvector (d = 2: v_min rotated 90).
    """
    mats = splitting_matrices(net, x, y)
    lam, vec = min_eigenpairs(mats)
    index = int(torch.argmin(lam))
    v_min = vec[index]
    v_other = torch.stack([-v_min[1], v_min[0]])
    lam_other = float(v_other @ mats[index] @ v_other)
    with torch.no_grad():
        base = loss(net, x, y).item()
        decrease = []
        for angle in np.deg2rad(angles_deg):
            direction = math.cos(angle) * v_min + math.sin(angle) * v_other
            decrease.append(base - loss(split(net, index, direction, eps), x, y).item())
    return {
        "neuron": index,
        "lambda_min": float(lam[index]),
        "lambda_other": lam_other,
        "angles_deg": [float(a) for a in angles_deg],
        "decrease": decrease,
    }


def r_squared(pred: np.ndarray, obs: np.ndarray, fit: bool) -> float:
    """R^2 of `obs` against `pred`: of the least-squares line if `fit`, else of pred itself."""
    pred, obs = np.asarray(pred, float), np.asarray(obs, float)
    if fit:
        slope, intercept = np.polyfit(pred, obs, 1)
        pred = slope * pred + intercept
    total = float(np.square(obs - obs.mean()).sum())
    return 1.0 - float(np.square(obs - pred).sum()) / total if total > 0 else float("nan")
