"""Splitting theory on tiny float64 DS-CNNs with smooth activations (ARCHITECTURE.md, Growth)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kws.batch_parts import BatchParts
from kws.config import GrowthConfig
from kws.growth.plan import SplitPlan
from kws.growth.scores import splitting_matrices, splitting_scores
from kws.growth.surgery import apply_splits
from kws.growth.units import realized_forward
from tests.helpers import tiny_ds_cnn

EXACT = GrowthConfig(dtype="float64", solver="exact")
FAST = GrowthConfig(dtype="float64", solver="fast")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(activation: str = "silu", widths=(8, 10, 9), seed: int = 0):
    """A float64 DS-CNN with randomised BN statistics, plus one batch of data."""
    model = tiny_ds_cnn(widths, activation, seed=seed)
    features = torch.randn(6, 7, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (6,))
    return model, [(features, labels)]


def eval_loss(model, batches) -> float:
    model.eval()
    with torch.no_grad():
        return sum(F.cross_entropy(model(x), y).item() for x, y in batches) / len(batches)


def test_splitting_matrix_is_the_hessian_of_the_realized_split_loss():
    model, batches = tiny("silu", widths=(4, 5, 3))
    mats, _ = splitting_matrices(model, batches, EXACT)
    shapes = [(m.shape[0], m.shape[1]) for m in mats]
    features, labels = batches[0]

    def loss(flat):
        deltas, offset = {}, 0
        for j, (c, d) in enumerate(shapes):
            deltas[j] = flat[offset : offset + c * d].reshape(c, d)
            offset += c * d
        return F.cross_entropy(realized_forward(model, features, deltas)[0], labels)

    total = sum(c * d for c, d in shapes)
    hessian = torch.func.hessian(loss)(torch.zeros(total, dtype=torch.float64))
    expected = torch.block_diag(*[block for m in mats for block in m])  # no cross terms
    assert hessian.abs().max() > 1e-4  # a meaningful comparison, not two zero matrices
    torch.testing.assert_close(hessian, expected, atol=1e-12, rtol=1e-9)


def test_paper_matrix_without_chain_term_is_not_the_realized_hessian():
    """S alone misses T from the duplicated depthwise chain; S + T predicts the real split."""
    model, batches = tiny("tanh")
    full, _ = splitting_matrices(model, batches, EXACT)
    paper, _ = splitting_matrices(model, batches, EXACT, chain_term=False)
    assert (full[0] - paper[0]).abs().max() > 0.05 * full[0].abs().max()
    torch.testing.assert_close(full[-1], paper[-1])  # last unit: pooling -> fc, T = 0
    lam_full = torch.linalg.eigvalsh(full[0])[:, 0]
    lam_paper = torch.linalg.eigvalsh(paper[0])[:, 0]
    assert (lam_full - lam_paper).abs().max() > 0.05 * lam_full.abs().max()


def _split_one(model, scores, unit, neuron, eps, direction=None):
    plan = SplitPlan(splits={unit: [neuron]})
    directions = None if direction is None else {unit: direction[None]}
    return apply_splits(model, plan, eps, scores, directions)[0]


def test_loss_change_approaches_half_eps_squared_lambda():
    model, batches = tiny("softplus")
    scores = splitting_scores(model, batches, EXACT)
    base = eval_loss(model, batches)
    unit = 1
    neuron = int(scores.units[unit].eigenvalues.argmin())
    lam = scores.units[unit].eigenvalues[neuron].item()
    errors = []
    for eps in (0.2, 0.05, 0.0125):
        change = eval_loss(_split_one(model, scores, unit, neuron, eps), batches) - base
        errors.append(abs(change / (eps**2 * lam / 2) - 1))
    assert errors[-1] < 1e-3
    assert errors[0] > errors[1] > errors[2]  # O(eps^2) relative error shrinks


def test_min_eigenvector_beats_random_directions():
    model, batches = tiny("silu")
    scores = splitting_scores(model, batches, EXACT)
    base = eval_loss(model, batches)
    unit, eps = 0, 0.05
    neuron = int(scores.units[unit].eigenvalues.argmin())
    best = eval_loss(_split_one(model, scores, unit, neuron, eps), batches) - base
    assert best < 0
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        v = torch.randn(scores.units[unit].vectors.shape[1], generator=gen, dtype=torch.float64)
        other = _split_one(model, scores, unit, neuron, eps, v / v.norm())
        assert eval_loss(other, batches) - base > best


def test_splits_in_different_units_add():
    model, batches = tiny("silu")
    scores = splitting_scores(model, batches, EXACT)
    base = eval_loss(model, batches)
    eps = 0.02
    a = SplitPlan(splits={0: [2, 5]})
    b = SplitPlan(splits={1: [3]})
    both = SplitPlan(splits={0: [2, 5], 1: [3], 2: [7]})
    c = SplitPlan(splits={2: [7]})
    changes = [
        eval_loss(apply_splits(model, p, eps, scores)[0], batches) - base for p in (a, b, c, both)
    ]
    predicted = sum(
        eps**2 / 2 * scores.units[j].eigenvalues[k].item()
        for j, ks in both.splits.items()
        for k in ks
    )
    assert abs(changes[3] - sum(changes[:3])) < 1e-3 * abs(changes[3])
    assert abs(changes[3] / predicted - 1) < 1e-2


def test_fast_solver_agrees_with_exact():
    for activation in ("silu", "relu"):
        model, batches = tiny(activation, widths=(12, 16, 10))
        exact = splitting_scores(model, batches, EXACT)
        fast = splitting_scores(model, batches, FAST)
        mats, _ = splitting_matrices(model, batches, EXACT)
        gaps = [torch.diff(torch.linalg.eigvalsh(m)[:, :2], dim=1)[:, 0] for m in mats]
        for e, f in zip(exact.units, fast.units, strict=True):
            scale = e.eigenvalues.abs().max()
            torch.testing.assert_close(f.eigenvalues, e.eigenvalues, atol=1e-3 * scale, rtol=0)
            cosine = (e.vectors * f.vectors).sum(dim=1).abs()
            simple = gaps[e.index] > 1e-3 * scale  # v_min is only defined up to sign if simple
            assert simple.sum() >= len(simple) // 2
            assert cosine[simple].min() > 1 - 1e-6, (activation, e.index, cosine.min())


def test_float32_fast_solver_tracks_float64_exact():
    """The float32 fast path (oneDNN depthwise conv, looser tolerance) on a float32 model."""
    model, batches = tiny("relu", widths=(12, 16, 10))
    exact = splitting_scores(model, batches, EXACT)
    model32 = model.float()
    batches32 = [(x.float(), y) for x, y in batches]
    fast = splitting_scores(model32, batches32, GrowthConfig(solver="fast"))
    for e, f in zip(exact.units, fast.units, strict=True):
        assert f.eigenvalues.dtype == torch.float32
        scale = e.eigenvalues.abs().max()
        torch.testing.assert_close(f.eigenvalues.double(), e.eigenvalues, atol=1e-2 * scale, rtol=0)


def test_scoring_leaves_the_model_unchanged():
    model, batches = tiny("relu")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for cfg in (EXACT, FAST, GrowthConfig()):
        splitting_scores(model, batches, cfg)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_batch_parts_score_as_the_whole_batches():
    """`BatchParts` (kws.batch_parts): each part's sums added in order equal the whole batch's."""
    model, batches = tiny("silu", widths=(12, 16, 10))
    (features, labels), parts = batches[0], BatchParts()
    for lo, hi in ((0, 2), (2, 6)):  # uneven parts
        parts.append([(features[lo:hi], labels[lo:hi])])
    for cfg in (EXACT, FAST):
        whole, split = splitting_scores(model, batches, cfg), splitting_scores(model, parts, cfg)
        assert split.num_examples == whole.num_examples == 6
        for w, s in zip(whole.units, split.units, strict=True):
            torch.testing.assert_close(s.eigenvalues, w.eigenvalues, atol=1e-9, rtol=1e-9)
