"""Small builders shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kws import distributed
from kws.config import DSCNNConfig, preset_config
from kws.models import ModelSpec, build_model

REPO = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str | None = None):
    """A script under the repository (recipes are not a package) loaded as a module, registered
    in sys.modules under `name` (default: its file stem) so its siblings can import it."""
    path = REPO / relative
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tone_recipe_overrides(root, cache, widths: int = 24) -> list[str]:
    """Overrides of a DS-CNN on the tone set that learns it in 4 short epochs on the CPU."""
    return [f"data.root={root}", f"data.cache_dir={cache}", f"model.widths={[widths] * 3}",
            "model.block_strides=[[1,1],[1,1]]", "train.epochs=4", "train.batch_size=16",
            "train.lr=5e-3", "train.lr_milestones=[0.75]", "train.device=cpu"]  # fmt: skip


def spec_of(config, input_shape=(49, 10), num_classes=12) -> ModelSpec:
    """A spec for a model config with the default front end's input and 12 classes."""
    return ModelSpec(config, tuple(input_shape), num_classes)


def preset_spec(name: str, **fields) -> ModelSpec:
    """The spec of a preset (default front end, 12 classes)."""
    return spec_of(preset_config(name, **fields))


def tiny_ds_cnn(
    widths=(8, 10, 9),
    activation: str = "silu",
    input_shape=(7, 5),
    num_classes: int = 3,
    seed: int = 0,
    dtype=torch.float64,
    randomize_bn: bool = True,
):
    """A small DS-CNN (3x3 stem, stride (2,1) then (1,1)) with randomised BN statistics."""
    torch.manual_seed(seed)
    config = DSCNNConfig(
        widths=list(widths),
        stem_kernel=[3, 3],
        stem_stride=[2, 1],
        block_strides=[[2, 1]] + [[1, 1]] * (len(widths) - 2),
        activation=activation,
    )
    model = build_model(ModelSpec(config, tuple(input_shape), num_classes)).to(dtype)
    if randomize_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
                with torch.no_grad():
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _rank_entry(rank: int, fn, world: int, store: str, args: tuple) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT="0", RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
    )  # fmt: skip
    torch.set_num_threads(1)
    # A file rendezvous: no port to pick and lose to another process between pick and bind.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    with distributed.session():
        fn(rank, world, *args)


def run_ranks(fn, world: int, *args) -> None:
    """Run `fn(rank, world, *args)` in `world` fresh processes joined in a gloo process group
    (as torchrun would start them, on CPU); a failure in any of them fails the caller.

    `fn` must be a module-level function (the processes are spawned and import it).
    """
    with tempfile.TemporaryDirectory(prefix="kws-ranks-") as tmp:
        store = str(Path(tmp) / "store")
        mp.start_processes(
            _rank_entry, args=(fn, world, store, args), nprocs=world, start_method="spawn"
        )


def torchrun(*args: str, **popen) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node 2 -m kws ARGS` from the repository, one thread
    per process, output captured (`finish` waits for it)."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "kws", *args]  # fmt: skip
    return subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


def finish(process: subprocess.Popen) -> str:
    """Wait for a `torchrun` process; its output, after asserting it succeeded."""
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out[-3000:]
    return out


def planned(plan: dict) -> dict:
    """What a plan decides (its float fields, the indices, are checked with the eigenvalues)."""
    chosen = [(c["unit"], c["neuron"]) for c in plan["chosen"]]
    return {key: plan[key] for key in ("splits", "new_widths", "params", "macs")} | {
        "chosen": chosen
    }


def randomize_batchnorm(model: torch.nn.Module, seed: int) -> None:
    """Random running statistics and affine parameters for every BatchNorm2d (SubSpectral
    Norm's included), so an export that drops or misfolds a norm cannot pass unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=gen))
            module.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
