"""Training stage: exactly resumable runs. A resume continues a run where its `last.pt` left
it (weights, optimizer, each rank's random stream, the training state), and refuses what would
make it another run: changed settings (`check_resume_settings`), another architecture or
optimizer layout, a teacher whose files changed since the checkpoint
(`check_teacher_unchanged`), or other training or validation examples (`check_data_unchanged`).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from kws import distributed
from kws.config import RecipeConfig, to_dict
from kws.errors import UserError
from kws.run import Checkpoint, CheckpointError, Run
from kws.train.setup import EPOCH_SEED_STRIDE, set_rng_state

log = logging.getLogger(__name__)
# How `examples_digest` is computed; a checkpoint recorded another way is not compared.
DIGEST_VERSION = 2


# Settings a resumed run may change: how fast or where it runs, and how long. More epochs
# extend a run, stretching its learning-rate schedule (milestones are fractions of the epochs),
# as an extension must. Everything else in these sections decides the numbers it trains to.
RESUME_SECTIONS = ("data", "features", "model", "train")
RESUME_FREE = frozenset({
    "data.cache_dir", "train.epochs", "train.device", "train.num_threads", "train.batch_parts",
    "train.memory_format", "train.compile", "train.compile_data", "train.fused_optimizer",
    "train.log_every_steps", "train.eval_batch_size",
})  # fmt: skip
# A growth run's rounds, budget and splitting settings decide its numbers too; its epochs are
# the plan of rounds, not an extension. Settings only `kws grow --compare` reads are free.
GROWTH_RESUME_SECTIONS = (*RESUME_SECTIONS, "growth", "budget")
GROWTH_RESUME_FREE = (RESUME_FREE - {"train.epochs"}) | {
    "growth.compare_methods", "growth.compare_budgets",
    "growth.compare_total_epochs", "growth.compare_seeds", "growth.prune_from_width",
    "growth.slimming_l1", "growth.prune_finetune_epochs",
}  # fmt: skip
# A comparison's cells are growth runs and their rivals: the same holds, and more seeds
# (`--seeds`, growth.compare_seeds) extend it.
COMPARE_RESUME_FREE = (RESUME_FREE - {"train.epochs"}) | {"growth.compare_seeds"}
# compared resolved (a file rewritten under the same name: check_teacher_unchanged)
RESUME_PATHS = ("data.root", "data.hard_negatives", "train.teacher", "train.soft_targets")


def resume_changes(
    saved: RecipeConfig,
    given: RecipeConfig,
    sections: tuple[str, ...] = RESUME_SECTIONS,
    free: frozenset[str] = RESUME_FREE,
) -> list[str]:
    """The settings of `sections` in which `given` differs from the run's `saved` config, as
    'train.lr: 0.003 there, 0.05 here' lines (`free` keys left out; paths compared resolved,
    so a relative and an absolute spelling of one folder agree)."""
    old, new = _dotted(to_dict(saved)), _dotted(to_dict(given))
    keys = sorted(k for k in set(old) | set(new) if k.split(".")[0] in sections)
    return [
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} here"
        for k in keys
        if k not in free and _comparable(k, old.get(k)) != _comparable(k, new.get(k))
    ]


def check_resume_settings(run, cfg: RecipeConfig, *, growth: bool = False) -> None:
    """A resume continues a run exactly: refuse a `cfg` whose settings differ from the `run`'s
    own (`resume_changes`). A run with nothing to continue yet (no checkpoint; for `growth`, no
    results) starts from the beginning and may change anything; a config.yaml that does not
    read (damaged, another kws version) gives way to the last checkpoint's own copy of the
    settings (a training run; a growth run is left to its checkpoints' checks). `growth` compares
    the growth and budget sections too and holds `train.epochs` (a growth run's plan of rounds).

    Raises:
        UserError: naming each difference and the ways on.
    """
    started = run.has_results() if growth else run.last_path.is_file()
    if growth:
        how = ("grow", "--resume")
        _refuse_changes(run, cfg, started, GROWTH_RESUME_SECTIONS, GROWTH_RESUME_FREE, how)
        return
    how = ("train", "--resume (more train.epochs may extend it)")
    saved = _refuse_changes(run, cfg, started, RESUME_SECTIONS, RESUME_FREE, how)
    if saved is None or saved.train.epochs == cfg.train.epochs:
        return
    done = _last_checkpoint(run).epoch
    if cfg.train.epochs < done:  # it would train nothing yet rewrite config.yaml's length
        raise UserError(
            f"train.epochs={cfg.train.epochs}, but '{run.root}' has trained {done} epochs "
            f"already and a resume cannot undo them: leave train.epochs out (it was "
            f"{saved.train.epochs}) or give {done} or more; to stop it here, evaluate or export "
            "it as it is"
        )
    log.warning(
        "train.epochs %d -> %d: the learning-rate schedule now spans %d epochs (its milestones "
        "are fractions of the run), so the epochs from here train at a %d-epoch run's rates, "
        "not at those this run was on",
        saved.train.epochs, cfg.train.epochs, cfg.train.epochs, cfg.train.epochs,
    )  # fmt: skip


def check_compare_resume_settings(run, cfg: RecipeConfig) -> None:
    """`kws grow --compare --resume` continues a comparison exactly: every method's finished
    runs stand, so refuse a `cfg` that differs from the comparison's saved config in anything
    but speed and place settings (`COMPARE_RESUME_FREE`; more seeds extend it). A comparison
    with no `comparison.json` yet starts from the beginning.

    Raises:
        UserError: naming each difference and the ways on.
    """
    started = (run.root / "comparison.json").is_file()
    how = ("grow", "--compare --resume")
    _refuse_changes(run, cfg, started, GROWTH_RESUME_SECTIONS, COMPARE_RESUME_FREE, how)


def _refuse_changes(run, cfg, started: bool, sections, free, how) -> RecipeConfig | None:
    """The checks `check_resume_settings` describes; returns the saved config it compared with
    (None when there was nothing to compare). `how`: the verb and the flags that continue."""
    if not started:  # a scripted restart may say --resume from the first start on
        log.warning("nothing to resume in '%s' yet: starting it from the beginning", run.root)
        return None
    saved, source = _saved_config(run, from_checkpoint=sections == RESUME_SECTIONS)
    if saved is None:
        return None
    changes = resume_changes(saved, cfg, sections, free)
    if changes:
        verb, flags = how
        own = f"kws {verb} {run.config_path} --run-dir {run.root} {flags}"
        if source != "config.yaml":
            own = f"the recipe it was started with and {flags}"
        raise UserError(
            f"--resume continues '{run.root}' with the settings it was trained with; its "
            f"{source} and this recipe with its overrides differ: {'; '.join(changes)}. "
            f"Continue with its own settings ({own}), start a new run (name=NEW), or restart "
            "it with --force"
        )
    return saved


def _saved_config(run, from_checkpoint: bool) -> tuple[RecipeConfig | None, str]:
    """The settings the run was trained with and where they were read: its config.yaml, else
    (missing or damaged) its last checkpoint's own copy when `from_checkpoint` (a plain
    training run, whose checkpoint holds the recipe as given); (None, "") when neither reads."""
    try:
        if run.config_path.is_file():
            return run.config(), "config.yaml"
    except UserError:
        pass  # damaged: the checkpoint's copy still says what the run was trained with
    if from_checkpoint and run.last_path.is_file():
        try:
            return Checkpoint.load(run.last_path).config, "last checkpoint's config"
        except UserError:
            return None, ""
    return None, ""


def _comparable(key: str, value):
    if key not in RESUME_PATHS:
        return value
    if isinstance(value, list) and len(value) <= 1:  # [] is "", [x] is x (one teacher, one set)
        value = value[0] if value else ""
    if not value:
        return value
    if isinstance(value, list):
        return [str(Path(v).resolve()) for v in value]
    return str(Path(value).resolve())


def _dotted(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def restore_rank_rng(state: dict, seed: int) -> None:
    """Each rank's own random stream (dropout): restored when the checkpoint has one per rank of
    this world size, else rank r > 0 is seeded apart from rank 0 (whose stream is the
    single-process one)."""
    r, world = distributed.shard()
    states = state.get("rng_ranks") or ([state["rng"]] if state.get("rng") else [])
    if len(states) == world:
        set_rng_state(states[r])  # draws continue exactly where they stopped
    elif r == 0 and states:
        set_rng_state(states[0])  # another world size: rank 0 keeps the saved stream
    elif r > 0:
        torch.manual_seed(seed * EPOCH_SEED_STRIDE + 7919 * r)


def _last_checkpoint(run: Run) -> Checkpoint | None:
    """The run's last.pt, or None when it has none.

    Raises:
        UserError: a damaged last.pt, with what a resume can do about it (the loader's own
            advice, to use best.pt as a model path, is no way to continue training).
    """
    if not run.last_path.is_file():
        return None
    try:
        return Checkpoint.load(run.last_path)
    except CheckpointError as exc:
        what = str(exc).split("; ")[0]
        raise UserError(
            f"cannot resume '{run.root}': {what}. A resume continues from last.pt exactly; "
            "start the run over with --force (copy checkpoints/best.pt elsewhere first to keep "
            "it for evaluate and export), or train a new run (name=NEW)"
        ) from None


def check_resumable(run: Run) -> None:
    """Refuse `--resume` on a run that has a model but no `last.pt` (more metrics lines than a
    crash during the first epoch's saves leaves, or a best.pt without any, as an adjusted run
    of `kws logit-adjust` has): starting it from the beginning would overwrite its model.

    Raises:
        UserError: naming what is there and the ways on.
    """
    if run.last_path.is_file():
        return
    lines = len(run.metrics_path.read_text().splitlines()) if run.metrics_path.is_file() else 0
    # a crash in the first epoch's saves leaves its one metrics line (written first) and perhaps
    # best.pt; a crash later leaves last.pt of the epoch before. Anything else is not a crash.
    if lines > 1 or (lines == 0 and run.best_path.is_file()):
        raise UserError(
            f"cannot resume '{run.root}': it has trained ({lines} metrics lines"
            f"{', checkpoints/best.pt' if run.best_path.is_file() else ''}) but its "
            f"checkpoints/last.pt, which a resume continues from, is missing. Restore it, keep "
            "this run and train a new one (name=NEW), or start this one over with --force"
        )


def resume_from_checkpoint(run: Run, model, optimizer) -> tuple[int, float, list[dict], dict]:
    """(epochs done, best val accuracy, trimmed history, saved state) from `last.pt`, read by
    rank 0 and broadcast (kws.distributed.main_value).

    Raises:
        UserError: the checkpoint holds another architecture or another optimizer layout
            (hints on one side only), naming the ways on.
    """
    ckpt = distributed.main_value(_last_checkpoint, run)
    if ckpt is None:  # killed before the first checkpoint: its metrics line is dropped too
        distributed.on_main(run.trim_metrics, 0)
        return 0, 0.0, [], {}
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise UserError(
            f"cannot resume '{run.root}': its checkpoint holds another architecture "
            f"({str(exc).splitlines()[0][:160]}...); resume with the run's own recipe "
            f"(kws train {run.config_path} --resume) or start a new run (name=NEW)"
        ) from None
    if ckpt.optimizer is not None:
        try:
            optimizer.load_state_dict(ckpt.optimizer)
        except ValueError as exc:  # other parameter groups: hints on one side only
            raise UserError(
                f"cannot resume '{run.root}': its optimizer state does not fit this run ({exc}); "
                "resume with the run's own recipe (train.hint_weight as it was) or start a new run"
            ) from None
    history = distributed.main_value(run.trim_metrics, ckpt.epoch)
    return ckpt.epoch, ckpt.best_val_accuracy, history, ckpt.state


def check_teacher_unchanged(run: Run, digests: list[list[str]], epochs: int) -> None:
    """Refuse to resume a distilled run whose teacher changed since its last checkpoint: a
    soft-target file or a teacher run's checkpoint rewritten under the same name would teach
    the rest of the run something else, silently. `digests`: `[path, sha256]` per file that
    teaches the run now (`kws.train.distill.teacher_digests`), compared in order with what the
    checkpoint recorded; a run with no checkpoint yet, one from before kws recorded its
    teacher, or one that has trained its `epochs` already (nothing left to teach) is not
    checked.

    Raises:
        UserError: naming each changed file and the ways on.
    """
    ckpt = _last_checkpoint(run)
    saved = None if ckpt is None or ckpt.epoch >= epochs else ckpt.state.get("teacher_sha256")
    if saved is None:
        return
    if len(saved) != len(digests):
        changed = [f"{len(saved)} teacher file(s) there, {len(digests)} here"]
    else:
        changed = [
            f"{path} (sha256 {old[:12]}... at the checkpoint, {new[:12]}... now)"
            for (_, old), (path, new) in zip(saved, digests)
            if old != new
        ]
    if changed:
        raise UserError(
            f"cannot resume '{run.root}': what teaches it changed since its last checkpoint: "
            f"{'; '.join(changed)}. Put the teacher back as it was, start a new run (name=NEW), "
            "or restart this one with --force"
        )


def examples_digest(data) -> dict:
    """What a run trains and validates on, `{"sha256": hex, "training": n, "validation": n}`:
    each example of those splits in order, as its clip (word folder and file name) or silence
    or mined window, and its label; then a checksum of every such row's decoded audio (the
    bank's int16 samples), so a clip rewritten under its name counts as changed and a copied
    or moved data folder does not. A resume compares it (`check_data_unchanged`)."""
    digest = hashlib.sha256()
    counts, used = {}, []
    for split in ("training", "validation"):
        examples = data.examples[split]
        counts[split] = len(examples.labels)
        digest.update(f"{split} {counts[split]}\n".encode())
        for row, label in zip(examples.bank_rows.tolist(), examples.labels.tolist()):
            digest.update(f"{_example_name(data.clips, row)}|{label}\n".encode())
        used.append(examples.bank_rows)
    rows = np.unique(np.concatenate(used))
    digest.update(_audio_checksums(data.bank, rows[rows >= 0]).tobytes())
    return {"version": DIGEST_VERSION, "sha256": digest.hexdigest(), **counts}


def _audio_checksums(bank: torch.Tensor, rows: np.ndarray, chunk: int = 512) -> np.ndarray:
    """One int64 checksum per bank row `(rows,)`: its samples weighted by fixed pseudo-random
    weights and summed, on the bank's device, `chunk` rows at a time. A float64 matrix product
    (BLAS) and exact: every product of an int16 sample and a weight < 2^15 is an integer below
    2^30, and 16,000 of them sum below 2^44, far inside float64's 2^53."""
    weights = np.random.default_rng(0).integers(1, 2**15, size=bank.shape[1])
    weights = torch.from_numpy(weights).to(bank.device, torch.float64)
    sums = [(bank[torch.from_numpy(part).to(bank.device)].double() @ weights).long().cpu()
            for part in np.array_split(rows, max(1, -(-len(rows) // chunk)))]  # fmt: skip
    return torch.cat(sums).numpy() if sums else np.zeros(0, np.int64)


def _example_name(clips: list, row: int) -> str:
    if row < 0:
        return "silence"
    if row >= len(clips):
        return f"window {row - len(clips)}"  # a mined hard negative, appended to the bank
    clip = clips[row]
    return f"{clip.word}/{clip.path.name}"


def check_data_unchanged(run: Run, saved: dict | None, now: dict) -> None:
    """Refuse to resume on other examples than the run's last checkpoint was trained on
    (`examples_digest`: clips added, removed or rewritten under data.root, another
    hard-negative file): the rest of the run would train on data its first epochs never saw,
    and the run would not be the one its config describes. `saved` None or of another
    `DIGEST_VERSION` (a checkpoint from before kws recorded it so) is not checked.

    Raises:
        UserError: with the example counts there and here, and the ways on.
    """
    if saved is None or saved.get("version") != now["version"]:
        return  # recorded before kws recorded it this way: nothing to compare with
    if saved["sha256"] == now["sha256"]:
        return
    counts = ", ".join(
        f"{split} examples {saved[split]:,} there, {now[split]:,} here"
        for split in ("training", "validation")
    )
    raise UserError(
        f"cannot resume '{run.root}': its training or validation examples changed since its last "
        f"checkpoint ({counts}; clips added, removed or rewritten under data.root, or another "
        "data.hard_negatives file). Resume on the data it was trained on, start a new run "
        "(name=NEW), or restart this one with --force"
    )
