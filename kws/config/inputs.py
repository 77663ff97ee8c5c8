"""Input configs: the dataset a recipe reads and the front end that turns its audio into features.

Every field is declared with `option(default, rule)` (kws.config.schema), so its allowed range
or choices sit next to its default; rules that relate two fields are each class's `validate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kws.config.schema import option
from kws.errors import ConfigError

GSC12_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


@dataclass
class DataConfig:
    """Where the audio lives and how examples are drawn (TensorFlow's speech_commands
    `input_data.py`; Warden 2018)."""

    root: str = option("data/synth", pattern=r".+")
    task: str = option("gsc12", choices=("gsc12", "all", "custom"))  # custom: `words` = keywords
    words: list[str] = field(default_factory=list)
    silence_percent: float = option(10.0, minimum=0.0)
    unknown_percent: float = option(10.0, minimum=0.0)
    validation_percent: float = option(10.0, minimum=0.0, maximum=100.0)
    testing_percent: float = option(10.0, minimum=0.0, maximum=100.0)
    seed: int = 59185
    time_shift_ms: float = option(100.0, minimum=0.0)
    background_probability: float = option(0.8, minimum=0.0, maximum=1.0)
    background_volume: float = option(0.1, minimum=0.0)
    # [low, high] dB: noise at a U[low, high] SNR relative to each clip's RMS instead of at
    # volume U[0, background_volume] (quiet words then get quiet noise, as in a real room)
    background_snr_db: list[float] = field(default_factory=list)
    silence_volume: float = option(1.0, minimum=0.0)
    speed_perturb: float = option(0.0, minimum=0.0, below=1.0)  # max relative speed change
    # Random equalizer per training example (kws.data.augment.random_eq): a tilt of up to
    # +-eq_tilt_db at 4 kHz against 1 kHz and one bell of up to +-eq_peak_db; 0 = off
    eq_tilt_db: float = option(0.0, minimum=0.0)
    eq_peak_db: float = option(0.0, minimum=0.0)
    # Vocal tract length perturbation (kws.features.warp_spectrum): each training example's
    # spectrum scaled in frequency by U[1 - vtlp_warp, 1 + vtlp_warp] (formants and harmonics
    # move, time does not; Jaitly & Hinton 2013); 0 = off
    vtlp_warp: float = option(0.0, minimum=0.0, below=0.5)
    spec_augment: bool = False
    spec_time_masks: int = option(2, minimum=0)
    spec_time_mask_frames: int = option(5, minimum=0)
    spec_freq_masks: int = option(2, minimum=0)
    spec_freq_mask_bins: int = option(2, minimum=0)
    # Stream-aware training (kws.data.stream_aug): this share of training examples looks like a
    # sliding window: the word moved by up to +-stream_shift_ms, relabelled _unknown_ when less
    # than min_keyword_fraction of its speech stays inside, a neighbouring word at the edge.
    stream_fraction: float = option(0.0, minimum=0.0, maximum=1.0)
    stream_shift_ms: float = option(500.0, minimum=0.0)
    min_keyword_fraction: float = option(0.75, above=0.0, maximum=1.0)
    neighbour_probability: float = option(0.5, minimum=0.0, maximum=1.0)
    # Mined hard negatives (kws stream-eval --mine): int16 windows (.npy) trained as _unknown_;
    # one file or a list of them (mining rounds: [round1.npy, round2.npy])
    hard_negatives: str | list[str] = ""
    exclude_speakers: list[str] = field(default_factory=list)  # speaker-id prefixes held out
    cache_dir: str = "data/cache"  # "" = no on-disk audio-bank cache
    max_clips_per_word: int = option(0, minimum=0)  # 0 = all; for quick experiments

    def validate(self) -> None:
        """Raises `ConfigError` for split percentages over 100, a malformed SNR range or a custom
        task with no words."""
        if self.validation_percent + self.testing_percent >= 100:
            raise ConfigError(
                f"data.validation_percent + data.testing_percent = "
                f"{self.validation_percent + self.testing_percent:g}: must be < 100"
            )
        snr = self.background_snr_db
        if snr and (len(snr) != 2 or not all(math.isfinite(x) for x in snr) or snr[0] > snr[1]):
            raise ConfigError(
                f"data.background_snr_db={snr}: give [low, high] in dB with low <= high, e.g. "
                '"data.background_snr_db=[0,20]", or [] to mix at data.background_volume'
            )
        if self.task == "custom" and not self.words:
            raise ConfigError(
                'data.task=custom needs data.words, e.g. "data.words=[marvin,sheila]"'
            )
        if self.task != "custom" and self.words:
            raise ConfigError(
                f"data.words={self.words} names the keywords of data.task=custom only, and "
                f"data.task={self.task} would ignore them: add data.task=custom, or drop "
                "data.words"
            )

    def check_features(self, features: FeatureConfig) -> None:
        """Raises `ConfigError` when VTLP would empty the top mel bands: a factor `1 - w`
        reads bin f from f / (1 - w), and nothing lies past Nyquist (kws.features.warp_spectrum).
        """
        top_hz = (1 - self.vtlp_warp) * features.sample_rate_hz / 2
        if self.vtlp_warp > 0 and features.mel_high_hz > top_hz:
            raise ConfigError(
                f"data.vtlp_warp={self.vtlp_warp:g} with features.mel_high_hz="
                f"{features.mel_high_hz:g}: warped down by {1 - self.vtlp_warp:g}, the bands "
                f"above {top_hz:g} Hz would be empty; lower one of them"
            )


@dataclass
class FeatureConfig:
    """MFCC / log-mel front end (Hello Edge / MLPerf Tiny; kws/features.py says how)."""

    kind: str = option("mfcc", choices=("mfcc", "logmel"))
    sample_rate_hz: int = option(16000, minimum=1000)
    clip_ms: float = option(1000.0, above=0.0)
    window_ms: float = option(40.0, above=0.0)
    hop_ms: float = option(20.0, above=0.0)
    fft_size: int = option(1024, minimum=2)
    num_mel: int = option(40, minimum=1)
    mel_low_hz: float = option(20.0, minimum=0.0)
    mel_high_hz: float = option(4000.0, above=0.0)
    num_mfcc: int = option(10, minimum=1)
    log_floor: float = option(1e-6, above=0.0)

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.clip_ms / 1000))

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.window_ms / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.hop_ms / 1000))

    @property
    def num_frames(self) -> int:
        """Frames of one clip: `1 + (clip - window) // hop` (no centering)."""
        return 1 + (self.clip_samples - self.window_samples) // self.hop_samples

    @property
    def num_coeffs(self) -> int:
        return self.num_mfcc if self.kind == "mfcc" else self.num_mel

    @property
    def input_shape(self) -> tuple[int, int]:
        """What the model sees per example: `(frames, coeffs)`."""
        return self.num_frames, self.num_coeffs

    def validate(self) -> None:
        """Raises `ConfigError` for a front end that cannot describe valid features."""
        if self.window_samples < 2 or self.hop_samples < 1:
            raise ConfigError(
                f"features.window_ms={self.window_ms:g} / hop_ms={self.hop_ms:g} give "
                f"{self.window_samples} / {self.hop_samples} samples; raise them"
            )
        if self.clip_samples < self.window_samples:
            raise ConfigError(
                f"features.clip_ms={self.clip_ms:g} is shorter than features.window_ms="
                f"{self.window_ms:g}; a clip needs at least one frame"
            )
        if self.fft_size < self.window_samples:
            raise ConfigError(
                f"features.fft_size={self.fft_size} is shorter than the window "
                f"({self.window_samples} samples); raise fft_size to at least the window length"
            )
        nyquist_hz = self.sample_rate_hz / 2
        if not self.mel_low_hz < self.mel_high_hz <= nyquist_hz:
            raise ConfigError(
                f"features.mel_low_hz={self.mel_low_hz:g} / mel_high_hz={self.mel_high_hz:g} must "
                f"satisfy low < high <= {nyquist_hz:g} (half the sample rate)"
            )
        if self.kind == "mfcc" and self.num_mfcc > self.num_mel:
            raise ConfigError(
                f"features.num_mfcc={self.num_mfcc} must be <= features.num_mel={self.num_mel}"
            )
