"""Front-end benchmark: torch batch path vs numpy streaming path vs librosa, same definition.

Prints a markdown table (clips/s for 1 s clips at 16 kHz, default `FeatureConfig`: 49 x 10
MFCC; plus BC-ResNet's 98 x 40 log-mel from its GSC recipe) naming the machine. Also times a
matmul DFT as an alternative to `torch.fft.rfft` for the batch path (it is not what
`kws.features` uses; the table shows why). Adds CUDA rows when a GPU is present. Runs in well
under a minute on a 2-core CPU.

    python benchmarks/features.py
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import numpy as np
import torch
from common import recipe
from machine import describe

from kws import features as F
from kws.config import FeatureConfig
from kws.data.augment import random_eq


def seconds_per_call(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Best of `repeats` timed calls after one warm-up (best = least disturbed by other load)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


class MatmulDftFrontEnd(torch.nn.Module):
    """`TorchFrontEnd` with the rfft replaced by one matmul against a windowed DFT matrix.

    Only the bins that the mel filters touch are computed, which halves the matrix.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mel = F.mel_filterbank(cfg)
        used = np.flatnonzero(mel.any(axis=0))
        first, last = used[0], used[-1] + 1
        angle = 2 * np.pi * np.outer(np.arange(cfg.window_samples), np.arange(first, last))
        angle /= cfg.fft_size
        dft = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * F.window(cfg)[:, None]
        self.num_bins = last - first
        self.register_buffer("dft", torch.tensor(dft, dtype=torch.float32))
        self.register_buffer("mel_t", torch.tensor(mel[:, first:last].T, dtype=torch.float32))
        self.register_buffer("dct", torch.tensor(F.dct_matrix(cfg), dtype=torch.float32))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.unfold(-1, self.cfg.window_samples, self.cfg.hop_samples)
        parts = frames @ self.dft
        power = parts[..., : self.num_bins].square() + parts[..., self.num_bins :].square()
        return torch.log(power @ self.mel_t + self.cfg.log_floor) @ self.dct


def main() -> None:
    cfg = FeatureConfig()
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, (1000, cfg.clip_samples)).astype(np.float32)
    audio_t = torch.from_numpy(audio)
    rows: list[tuple[str, str, str, float]] = []
    no_sync = lambda: None  # noqa: E731

    torch_fe, matmul_fe = F.TorchFrontEnd(cfg), MatmulDftFrontEnd(cfg)
    pieces = F._CPU_CHUNK_FRAMES // cfg.num_frames
    logmel_cfg = recipe("bc_resnet_1").features  # BC-ResNet's 98 x 40 log-mel, 10 ms hop
    logmel_fe = F.TorchFrontEnd(logmel_cfg)
    variants = {
        f"torch `TorchFrontEnd` (rfft, CPU pieces of {pieces} clips)": (torch_fe, (100, 1000)),
        # `_features` skips the split into cache-sized pieces: what the pieces buy.
        "torch rfft, whole batch in one piece": (torch_fe._features, (1000,)),
        "torch matmul DFT (alternative, unused)": (matmul_fe, (100,)),
        "torch `TorchFrontEnd`, 98 x 40 log-mel (BC-ResNet)": (logmel_fe, (100, 1000)),
        # A training augmentation beside the front end it feeds: what `data.eq_tilt_db` costs.
        "training augmentation `random_eq` (tilt + bell, one rfft/irfft per clip)": (
            lambda clips: random_eq(clips, 10.0, 6.0, cfg.sample_rate_hz),
            (100,),
        ),
    }
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            for name, (fn, batches) in variants.items():
                for batch in batches:
                    clips = audio_t[:batch]
                    repeats = 5 if batch <= 100 else 2
                    t = seconds_per_call(lambda fn=fn, clips=clips: fn(clips), repeats, no_sync)
                    rows.append((name, str(batch), str(threads), batch / t))

    numpy_fe = F.NumpyFrontEnd(cfg)
    t = seconds_per_call(lambda: [numpy_fe.features(clip) for clip in audio[:50]], 2, no_sync)
    rows.append(("numpy `NumpyFrontEnd.features`", "1", "BLAS default", 50 / t))
    frames = [audio[0, i * 320 : i * 320 + 640] for i in range(cfg.num_frames)]
    t = seconds_per_call(lambda: [numpy_fe.frame(f) for f in frames], 3, no_sync)
    rows.append(("numpy `NumpyFrontEnd.frame`, 49 calls (streaming)", "1", "BLAS default", 1 / t))
    logmel_np = F.NumpyFrontEnd(logmel_cfg)
    t = seconds_per_call(lambda: [logmel_np.features(clip) for clip in audio[:50]], 2, no_sync)
    rows.append(("numpy `NumpyFrontEnd.features`, 98 x 40 log-mel", "1", "BLAS default", 50 / t))
    try:
        t = seconds_per_call(lambda: [F.librosa_features(c, cfg) for c in audio[:20]], 2, no_sync)
        rows.append(("librosa (same definition, float64)", "1", "BLAS default", 20 / t))
    except ImportError:
        print("librosa is not installed: no librosa row")

    if torch.cuda.is_available():
        gpu_fe = F.TorchFrontEnd(cfg).cuda()
        with torch.inference_mode():
            for batch in (100, 1000, 10000):
                reps = (batch + 999) // 1000
                clips = audio_t.cuda().repeat(reps, 1)[:batch]
                t = seconds_per_call(lambda clips=clips: gpu_fe(clips), 10, torch.cuda.synchronize)
                rows.append(
                    (f"torch rfft on {torch.cuda.get_device_name()}", str(batch), "-", batch / t)
                )

    print(f"Front end, 1 s clips -> 49 x 10 MFCC, torch {torch.__version__}")
    print(f"Machine: {describe()}, {platform.system()} {platform.release()}\n")
    print("| implementation | clips per call | threads | clips/s | ms per clip |")
    print("|---|---|---|---|---|")
    for name, batch, threads, rate in rows:
        print(f"| {name} | {batch} | {threads} | {rate:,.0f} | {1000 / rate:.3f} |")


if __name__ == "__main__":
    main()
