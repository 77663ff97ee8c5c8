"""Stage configs after the front end (training, growth, budget, export, streaming), and
`RecipeConfig`, which nests them with the input configs of kws.config.inputs.

Every field is declared with `option(default, rule)` (kws.config.schema), so its allowed range
or choices sit next to its default; rules that relate two fields are each class's `validate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kws.config.inputs import DataConfig, FeatureConfig
from kws.config.models import DSCNNConfig, ModelConfig
from kws.config.schema import check_fields, option
from kws.errors import ConfigError

DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?|mps"
GROWTH_METHODS = ("splitting", "random", "random_init", "scratch")
COMPARE_METHODS = (
    "splitting",
    "uniform",
    "random_split",
    "random_init",
    "grown_scratch",
    "bn_prune",
    "l1_prune",
)
BACKENDS = ("auto", "torch", "onnx", "tflite")


@dataclass
class TrainConfig:
    """Optimisation schedule; defaults follow Hello Edge (Zhang et al. 2017) scaled down."""

    epochs: int = option(30, minimum=1)
    batch_size: int = option(100, minimum=1)
    optimizer: str = option("adam", choices=("adam", "sgd"))
    momentum: float = option(0.9, minimum=0.0, below=1.0)  # sgd only
    lr: float = option(5e-4, above=0.0)
    # step: lr * gamma^(milestones passed); cosine: annealing to 0 (BC-ResNet's setup)
    lr_schedule: str = option("step", choices=("step", "cosine"))
    lr_milestones: list[float] = option(factory=lambda: [0.5, 0.8], item_minimum=0.0)
    lr_gamma: float = option(0.2, above=0.0, maximum=1.0)
    warmup_epochs: int = option(0, minimum=0)  # linear warm-up before the schedule
    weight_decay: float = option(0.0, minimum=0.0)
    label_smoothing: float = option(0.0, minimum=0.0, below=1.0)
    # Knowledge distillation (kws.train.distill): a trained run (same labels and features) whose
    # soft posteriors at this temperature make up distill_weight of the loss; "" = none; a list
    # of runs teaches as their ensemble (mean logits).
    teacher: str | list[str] = ""
    # Offline distillation: an .npz of precomputed teacher logits per training clip (a teacher
    # kws cannot run each step, recipes/transfer/speech_embedding.py); "" = none.
    soft_targets: str = ""
    distill_weight: float = option(0.5, minimum=0.0, maximum=1.0)
    distill_temperature: float = option(2.0, above=0.0)
    # Hints (FitNets, Romero et al. 2015): with soft targets that also hold the teacher's
    # embeddings, a linear map of the student's pooled embedding regresses them (standardized),
    # weighted by this in the loss; 0 = off.
    hint_weight: float = option(0.0, minimum=0.0)
    bn_l1: float = option(0.0, minimum=0.0)  # L1 on BatchNorm scales (network slimming)
    device: str = option("auto", pattern=DEVICE_PATTERN)  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast, only on CUDA
    # Under torchrun: BatchNorm statistics of the global batch (as one process computes them)
    # instead of each rank's part; false trades that for less communication per step.
    sync_batchnorm: bool = True
    # Compute every global batch as this many fixed parts, whatever the number of processes
    # (kws.batch_parts): with 2, one process and two train bit for bit alike on the CPU (same
    # threads per process); 0 = one part per process.
    batch_parts: int = option(0, minimum=0)
    # auto: channels_last on CPU (faster), contiguous elsewhere (kws.train.setup.prepare_model)
    memory_format: str = option("auto", choices=("auto", "channels_last", "contiguous"))
    # Speed-ups of a training step (benchmarks/gpu_epoch.py measures each): torch.compile of
    # the model's forward/backward (graphs: plus CUDA graphs, CUDA only), of augmentation and
    # front end, and a fused (one-kernel) optimizer step.
    compile: str = option("off", choices=("off", "on", "graphs"))
    compile_data: bool = False
    fused_optimizer: bool = False
    seed: int = option(0, minimum=0)
    num_threads: int = option(0, minimum=0)  # 0 = torch default
    log_every_steps: int = option(20, minimum=1)
    eval_batch_size: int = option(500, minimum=1)
    max_steps_per_epoch: int = option(0, minimum=0)  # 0 = full epoch
    # A mean training loss above this (cross-entropy, nats) is divergence, not learning: chance
    # level is ln(classes) ~ 2.5, so 100 means logits of ~100 on wrong classes.
    divergence_loss: float = option(100.0, above=0.0)

    def validate(self) -> None:
        """Raises `ConfigError` for milestones outside the run, batch parts combined with what
        they cannot keep bit for bit, an empty list of teachers, two teachers, and hints
        without soft targets or with what hides the embedding."""
        if self.teacher == []:
            raise ConfigError(
                "train.teacher=[] names no run: give one or more runs "
                '("train.teacher=[runs/a,runs/b]"), or train.teacher="" for no distillation'
            )
        if self.teacher and self.soft_targets:
            raise ConfigError(
                "train.teacher and train.soft_targets each name the teacher; give one of them"
            )
        if self.hint_weight and not self.soft_targets:
            raise ConfigError(
                f"train.hint_weight={self.hint_weight} regresses the teacher's embeddings, which "
                "come in train.soft_targets; give that file or set train.hint_weight=0"
            )
        if self.hint_weight and (self.batch_parts or self.compile != "off"):
            raise ConfigError(
                "train.hint_weight reads the student's embedding between its layers, which "
                "train.batch_parts and train.compile do not expose; set them to 0 / off"
            )
        if any(m > 1 for m in self.lr_milestones):
            raise ConfigError(
                f"train.lr_milestones={self.lr_milestones}: milestones are fractions of the run "
                "in [0, 1], e.g. [0.5, 0.8]"
            )
        if self.batch_parts and not self.sync_batchnorm:
            raise ConfigError(
                "train.batch_parts normalizes with the global batch's statistics, so "
                "train.sync_batchnorm=false cannot hold; drop one of them"
            )
        if self.batch_parts and self.compile != "off":
            raise ConfigError(
                f"train.batch_parts runs layers part by part in Python, which "
                f"train.compile={self.compile} does not support; use train.compile=off or "
                "train.batch_parts=0"
            )


@dataclass
class BudgetConfig:
    """Microcontroller budget: a named target (kws/budget/targets.yaml) and/or plain limits."""

    target: str = ""
    runtime: str = ""  # latency model of the target's core: tflm | vendor | ... ("" = target's)
    max_params: int = option(0, minimum=0)  # 0 = no limit
    max_macs: int = option(0, minimum=0)
    max_flash_bytes: int = option(0, minimum=0)
    max_ram_bytes: int = option(0, minimum=0)


@dataclass
class GrowthConfig:
    """Splitting steepest descent (Liu, Wu, Wang 2019) and the growth schedule.

    Algorithm 1 splits when parametric descent has stalled: each round trains to a plateau of
    `plateau_metric` (no relative improvement above `plateau_min_delta` for `plateau_patience`
    epochs, at least `min_epochs_per_round`, at most the round's cap), all rounds at the peak
    learning rate (`schedule: global`; optionally a linear warm-up after each split), then the
    final architecture gets a full decay over `final_epochs`. `total_epochs` makes the whole
    run's epochs a fixed budget so compared methods train for the same number; the final phase
    then gets every epoch the rounds left, `final_epochs` being the least it keeps.
    """

    rounds: int = option(3, minimum=0)  # most splitting rounds
    method: str = option("splitting", choices=GROWTH_METHODS)
    seed_epochs: int = option(0, minimum=0)  # cap of the seed round; 0 = train.epochs
    epochs_per_round: int = option(10, minimum=1)  # cap of each later round
    min_epochs_per_round: int = option(1, minimum=1)
    plateau_patience: int = option(2, minimum=0)  # 0 = no plateau rule: every round to its cap
    plateau_min_delta: float = option(0.01, minimum=0.0)  # relative improvement that counts
    plateau_metric: str = option("val_loss", choices=("val_loss", "train_loss"))
    # global: one schedule over the run (peak LR while growing, decay at the end);
    # restart: every round restarts the recipe's step schedule (the old behaviour, to compare)
    schedule: str = option("global", choices=("global", "restart"))
    warmup_epochs: int = option(0, minimum=0)  # linear LR warm-up after each split
    final_epochs: int = option(0, minimum=0)  # decay phase of the final model; 0 = see below
    total_epochs: int = option(0, minimum=0)  # whole-run budget; 0 = rounds' epochs + final
    grow_fraction: float = option(0.3, minimum=0.0)
    max_splits_per_round: int = option(0, minimum=0)  # m*; 0 = no cap beyond grow_fraction
    index_threshold: float = 0.0  # lambda*: split only neurons with index <= this
    cost_aware: bool = True
    cost: str = option("macs", choices=("macs", "params"))
    max_widths: list[int] = option(factory=list, item_minimum=0)
    eps: float = option(1e-2, minimum=0.0)
    eps_relative: bool = False  # step eps * |theta| * v instead of eps * v
    calibration_batches: int = option(8, minimum=0)  # 0 = the whole training split
    solver: str = option("exact", choices=("exact", "fast"))
    dtype: str = option("float32", choices=("float32", "float64"))
    relu_softplus_beta: float = option(3.0, above=0.0)
    fast_iterations: int = option(0, minimum=0)  # LOBPCG iterations; 0 = 100 (fp32) / 300 (fp64)
    fast_tol: float = option(0.0, minimum=0.0)  # relative residual; 0 = 1e-3 (fp32) / 1e-9 (fp64)
    # `kws grow --compare`: methods, parameter budgets (0 entries: budget.max_params), seeds
    compare_methods: list[str] = option(factory=lambda: list(COMPARE_METHODS),
                                        item_choices=COMPARE_METHODS)  # fmt: skip
    compare_budgets: list[int] = option(factory=list, item_minimum=1)
    # one epoch budget per entry of compare_budgets (a larger model needs more rounds to
    # reach its budget); empty = total_epochs for every budget
    compare_total_epochs: list[int] = option(factory=list, item_minimum=1)
    compare_seeds: int = option(1, minimum=1)
    # pruning rivals: the large model's uniform width (0 = 2x the width of the largest budget's
    # uniform rival), slimming's L1 on BN scales, fine-tuning epochs (0 = final_epochs)
    prune_from_width: int = option(0, minimum=0)
    slimming_l1: float = option(1e-4, minimum=0.0)
    prune_finetune_epochs: int = option(0, minimum=0)

    def validate(self) -> None:
        """Raises `ConfigError` when the epoch budget cannot hold the final phase."""
        if self.total_epochs and self.final_epochs >= self.total_epochs:
            raise ConfigError(
                f"growth.final_epochs={self.final_epochs} leaves no epochs for growing inside "
                f"growth.total_epochs={self.total_epochs}; lower final_epochs or raise the total"
            )
        if self.compare_total_epochs and len(self.compare_total_epochs) != len(
            self.compare_budgets
        ):
            raise ConfigError(
                f"growth.compare_total_epochs has {len(self.compare_total_epochs)} entries for "
                f"{len(self.compare_budgets)} growth.compare_budgets; give one per budget "
                "(or none to use growth.total_epochs for all)"
            )
        if any(self.final_epochs >= total for total in self.compare_total_epochs):
            raise ConfigError(
                f"growth.final_epochs={self.final_epochs} must be below every entry of "
                f"growth.compare_total_epochs={self.compare_total_epochs}"
            )


@dataclass
class ExportConfig:
    """Which formats to write and the int8 accuracy gate."""

    formats: list[str] = option(
        factory=lambda: ["onnx", "tflite", "tflm"], min_items=1,
        item_choices=("onnx", "tflite", "tflm"),
    )  # fmt: skip
    calibration_batches: int = option(10, minimum=1)
    max_int8_drop_points: float = option(1.0, minimum=0.0)
    eval_max_clips: int = option(0, minimum=0)  # 0 = whole test split


@dataclass
class StreamConfig:
    """Streaming keyword decisions (kws.stream.recognize; README 'Streaming semantics').

    A keyword fires when it tops the smoothed posteriors above the threshold and is armed; it
    re-arms when its smoothed score falls below `release_fraction` x threshold, or when a new
    word starts after a pause (frame-level voice activity). The same rule runs on a device
    (deploy/tflm/recognize_commands.cc).
    """

    stride_ms: float = option(20.0, above=0.0)  # a model run every stride; whole hops
    average_window_ms: float = option(500.0, above=0.0)  # posteriors averaged over this span
    detection_threshold: float = option(0.7, above=0.0, below=1.0)  # smoothed score to exceed
    # Refractory time: no keyword fires this soon after the previous keyword event. Short on
    # purpose: a long one lets a wrong label that fired first block the right one.
    suppression_ms: float = option(200.0, minimum=0.0)
    minimum_count: int = option(4, minimum=1)  # fewest posteriors in the window for a decision
    # A fired keyword re-arms once its smoothed score falls below this fraction of the threshold
    # (hysteresis: it cannot fire twice on one word whose score wobbles around the threshold).
    release_fraction: float = option(0.5, above=0.0, below=1.0)
    # A pause of at least this long, followed by speech, starts a new word: once the model's
    # window has moved past the pause's start, every keyword re-arms, so a word repeated after
    # a pause fires again. 0 turns word segmentation off (re-arming by the score alone).
    word_gap_ms: float = option(150.0, minimum=0.0)
    vad_margin_db: float = option(6.0, above=0.0)  # speech: this far above the noise floor
    noise_floor_rise_db_per_s: float = option(5.0, above=0.0)  # the floor rises this slowly
    # auto: the fastest runtime the run has exported (ONNX Runtime, LiteRT, then torch)
    backend: str = option("auto", choices=BACKENDS)

    def results_per_window(self) -> int:
        """Most posteriors the averaging window can hold at this stride (the window is closed)."""
        return int(math.floor(self.average_window_ms / self.stride_ms + 1e-9)) + 1

    def validate(self, features: FeatureConfig) -> None:
        """Refuse settings under which no keyword could ever fire.

        Raises:
            ConfigError: naming the keys, their values and which values to change.
        """
        hop = features.hop_ms
        ratio = self.stride_ms / hop
        if not (ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-6):
            raise ConfigError(
                f"stream.stride_ms={self.stride_ms:g} must be a positive multiple of "
                f"features.hop_ms={hop:g} (a model run needs whole new feature frames); set "
                f"stream.stride_ms={hop:g} or {2 * hop:g}"
            )
        check_fields(self, "stream")  # a detector may get a config no recipe load checked
        count, window = self.results_per_window(), self.average_window_ms
        # The largest stride (a multiple of the hop) at which the window holds enough results.
        needed = self.minimum_count - 1
        best_stride = hop * math.floor(window / needed / hop + 1e-9) if needed else window
        if count < self.minimum_count:
            raise ConfigError(
                f"no keyword can ever fire: stream.average_window_ms={window:g} holds at most "
                f"{count} posterior(s) at stream.stride_ms={self.stride_ms:g}, fewer than "
                f"stream.minimum_count={self.minimum_count}; lower stream.stride_ms to "
                f"{best_stride:g} or less, raise stream.average_window_ms to "
                f"{needed * self.stride_ms:g} or more, or lower stream.minimum_count to {count}"
            )
        if (count - 1) * self.stride_ms < window / 4:  # decisions need a quarter-window span
            raise ConfigError(
                f"no keyword can ever fire: stream.stride_ms={self.stride_ms:g} is longer than "
                f"stream.average_window_ms={window:g}, so the averaged posteriors never span a "
                f"quarter of the window; lower stream.stride_ms or raise "
                f"stream.average_window_ms to {self.stride_ms:g} or more"
            )


@dataclass
class RecipeConfig:
    """A whole recipe: run name and folder, then one section per stage."""

    name: str = option("run", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    runs_dir: str = option("runs", pattern=r".+")
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=DSCNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
