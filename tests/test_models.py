"""Published parameter and op counts (REFERENCE.md) and model invariants."""

import pytest
import torch

from kws.models import count_macs, count_params, create_model, preset_config
from kws.models.ds_cnn import same_padding


@pytest.mark.parametrize(
    "preset, ops_m, params_k",
    [("ds_cnn_s", 5.4, 23.0), ("ds_cnn_m", 19.8, None), ("ds_cnn_l", 56.9, 413.7)],
)
def test_published_counts_within_3_percent(preset, ops_m, params_k):
    cfg = preset_config(preset)
    ops = 2 * count_macs(cfg) / 1e6
    assert ops == pytest.approx(ops_m, rel=0.03)
    if params_k:
        assert count_params(cfg) / 1e3 == pytest.approx(params_k, rel=0.03)


@pytest.mark.parametrize("preset", ["ds_cnn_s", "ds_cnn_m", "ds_cnn_l", "ds_cnn_seed"])
def test_analytic_params_match_module(preset):
    cfg = preset_config(preset)
    model = create_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg)
    assert model(torch.randn(3, 49, 10)).shape == (3, cfg.num_classes)


def test_macs_match_hooks():
    """Analytic MACs equal MACs counted from the real conv/linear output shapes."""
    cfg = preset_config("ds_cnn_l")
    model = create_model(cfg).eval()
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs.append(output.numel() * k)
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)

    for m in model.modules():
        m.register_forward_hook(hook)
    model(torch.randn(1, 49, 10))
    assert sum(macs) == count_macs(cfg)


def test_tf_same_padding():
    # 49 frames, kernel 10, stride 2 -> 25 outputs, 9 padding split 4 before / 5 after (TF)
    assert same_padding(49, 10, 2) == (4, 5)
    assert same_padding(10, 4, 2) == (1, 1)
    assert same_padding(25, 3, 1) == (1, 1)


def test_non_uniform_widths():
    cfg = preset_config("ds_cnn_s", widths=[8, 12, 6, 10, 5])
    model = create_model(cfg)
    assert model(torch.randn(2, 49, 10)).shape == (2, 12)
    with pytest.raises(ValueError, match="widths"):
        create_model(preset_config("ds_cnn_s", widths=[8, 8]))


def test_unknown_preset():
    with pytest.raises(ValueError, match="ds_cnn_s"):
        preset_config("ds_cnn_xl")
