"""The embedding-fit diagnostic (recipes/diagnostics/embedding_fit.py) on the streaming tone
run: R^2 is the least-squares map's against the hint's targets (silence's mean, standardized),
a run whose checkpoint holds that very map as its hint projector scores the same through the
projector, and runs of other data are refused."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from kws.run import resolve_run
from tests.helpers import load_script
from tests.recipes.test_shift_checks import _engine_copy
from tests.stream.conftest import make_tone_run

pytest.importorskip("openwakeword", reason="pip install openwakeword==0.4.0 (kws[teacher])")
fit_script = load_script("recipes/diagnostics/embedding_fit.py")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_least_squares_and_the_hint_projector_branch_agree(tmp_path):
    run = make_tone_run(tmp_path)
    held = _engine_copy(tmp_path / "data", tmp_path / "held", "espeak", gain=3.0)
    out = tmp_path / "rows.json"
    assert fit_script.main([str(run), "--holdout-engine", "espeak-ng", "--data", str(held),
                            "--json", str(out)]) == 0  # fmt: skip
    (row,) = json.loads(out.read_text()).values()
    assert set(row) == {"least_squares"}  # no hint projector in a run without hints
    row = row["least_squares"]
    assert 0 < row["training"] <= 1  # least squares with a bias is never below the mean's 0
    # the same least-squares map by hand, written into a copy of the run as its projector; the
    # targets as hints have them: silence examples get their mean, then standardized
    _, data = fit_script._data(str(run), [])
    target = fit_script.embed(
        fit_script.embedder(), data.audio_batches("training", 500, seed=fit_script.EVAL_SEED)
    )
    target = target[0].flatten(1).double()
    silence = torch.from_numpy(data.examples["training"].bank_rows < 0)
    assert silence.any()
    target[silence] = target[silence].mean(0)
    target = (target - target.mean(0)) / (target.std(0, unbiased=False) + 1e-6)
    checkpoint = resolve_run(run).checkpoint()
    model = checkpoint.build_model().eval()
    with torch.no_grad():
        x = torch.cat([model.embed(f) for f, _ in data.batches("training", 500,
                       seed=fit_script.EVAL_SEED)]).double()  # fmt: skip
    solution = torch.linalg.lstsq(fit_script._with_bias(x), target).solution
    assert fit_script.r_squared(fit_script._with_bias(x) @ solution, target) == pytest.approx(
        row["training"], abs=1e-9
    )
    hinted = tmp_path / "hinted"
    shutil.copytree(run, hinted)
    checkpoint.state = {
        **(checkpoint.state or {}),
        "hint": {
            "projector.weight": solution[:-1].T.float(),
            "projector.bias": solution[-1].float(),
        },
    }
    checkpoint.save(hinted / "checkpoints" / "best.pt")
    maps = fit_script.fit([str(hinted)], "espeak", str(held))[str(hinted)]
    assert set(maps) == {"least_squares", "hint_projector"}
    for name in fit_script.SETS:  # float32 weights: the same map to rounding
        assert maps["hint_projector"][name] == pytest.approx(row[name], abs=1e-5)
        assert maps["least_squares"][name] == pytest.approx(row[name], abs=1e-9)
    other = tmp_path / "other"
    shutil.copytree(run, other)
    text = (run / "config.yaml").read_text()  # data.seed is the first `  seed:` line
    text = re.sub(r"^  seed: \d+", "  seed: 12345", text, count=1, flags=re.M)
    (other / "config.yaml").write_text(text)
    assert resolve_run(other).run.config([]).data.seed == 12345
    assert fit_script.main([str(run), str(other), "--holdout-engine", "espeak-ng",
                            "--data", str(held)]) == 2  # fmt: skip
