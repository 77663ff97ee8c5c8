"""DS-CNN: published parameter and op counts (Hello Edge, Zhang et al. 2017; the splitting
paper's Table 1) and model invariants."""

import pytest
import torch

from kws.config import load_recipe, preset_config
from kws.errors import ConfigError
from kws.models import build_model, count_macs, count_params, split_structure
from kws.models.layers import same_padding
from tests.helpers import preset_spec, spec_of


@pytest.mark.parametrize(
    "preset, ops_m, params_k",
    [("ds_cnn_s", 5.4, 23.0), ("ds_cnn_m", 19.8, None), ("ds_cnn_l", 56.9, 413.7)],
)
def test_published_counts_within_3_percent(preset, ops_m, params_k):
    spec = preset_spec(preset)
    ops = 2 * count_macs(spec) / 1e6
    assert ops == pytest.approx(ops_m, rel=0.03)
    if params_k:
        assert count_params(spec) / 1e3 == pytest.approx(params_k, rel=0.03)


@pytest.mark.parametrize("preset", ["ds_cnn_s", "ds_cnn_m", "ds_cnn_l", "ds_cnn_seed"])
def test_analytic_params_match_module(preset):
    spec = preset_spec(preset)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == count_params(spec)
    assert model(torch.randn(3, 49, 10)).shape == (3, 12)


def test_macs_match_hooks():
    """Analytic MACs equal MACs counted from the real conv/linear output shapes."""
    spec = preset_spec("ds_cnn_l")
    model = build_model(spec).eval()
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
    assert sum(macs) == count_macs(spec)


def test_tf_same_padding():
    # 49 frames, kernel 10, stride 2 -> 25 outputs, 9 padding split 4 before / 5 after (TF)
    assert same_padding(49, 10, 2) == (4, 5)
    assert same_padding(10, 4, 2) == (1, 1)
    assert same_padding(25, 3, 1) == (1, 1)


def test_input_shape_and_classes_come_from_other_stages():
    """The front end owns the input shape and the data the classes; the model stores neither."""
    cfg = load_recipe(None, ["model.preset=ds_cnn_s", "features.kind=logmel", "features.hop_ms=10"])
    spec = spec_of(cfg.model, cfg.features.input_shape, 5)
    assert spec.input_shape == (97, 40)
    assert build_model(spec)(torch.randn(2, 97, 40)).shape == (2, 5)
    assert not hasattr(cfg.model, "num_classes") and not hasattr(cfg.model, "input_frames")


def test_non_uniform_widths():
    model = build_model(preset_spec("ds_cnn_s", widths=[8, 12, 6, 10, 5]))
    assert model(torch.randn(2, 49, 10)).shape == (2, 12)
    with pytest.raises(ConfigError, match="widths"):
        load_recipe(None, ["model.preset=ds_cnn_s", "model.widths=[8,8]"])


def test_units_are_declared_in_forward_order():
    model = build_model(preset_spec("ds_cnn_s"))
    units = split_structure(model).units
    assert [u.name for u in units] == ["stem", "block1.pw", "block2.pw", "block3.pw", "block4.pw"]
    assert units[0].chain.conv == "blocks.0.dw_conv" and units[-1].chain is None
    assert units[-1].consumer == "fc"
    for unit in units:  # every declared name is a real submodule
        model.get_submodule(unit.producer), model.get_submodule(unit.consumer)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="ds_cnn_s"):
        preset_config("ds_cnn_xl")
