"""Training augmentation on the audio tensor's own device (TensorFlow's `input_data.py`).

TensorFlow's defaults as used by Hello Edge: time shift uniform in +/-100 ms with zero padding;
with probability 0.8 mix a random 1 s slice of a background-noise file at volume U[0, 0.1]
(or, opt-in, at a U[low, high] dB SNR against the clip); clip to [-1, 1]. Silence examples are
background noise at volume U[0, 1], foreground muted. Optional: speed perturbation (resampling
by linear interpolation), a random equalizer (spectral tilt and one bell, the colour of an
unheard voice or microphone) and SpecAugment masks.

Every draw goes through `uniform`/`integers`, which honour `RowDraws`: under data parallelism a
process holds a slice of the global batch but draws for all of it, so its rows get exactly the
numbers a single process would give them (kws.distributed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class RowDraws:
    """A generator used for rows [lo, hi) of a global batch of `total` rows.

    Pass it where a `torch.Generator` goes: each draw is made for all `total` rows (the same
    numbers, in the same order, as one process drawing for the whole batch) and sliced.
    """

    generator: torch.Generator
    total: int
    lo: int
    hi: int


def uniform(generator, batch: int, *shape: int, device) -> torch.Tensor:
    """U[0, 1) of shape `(batch, *shape)`, the rows of a `RowDraws` slice when given one."""
    if isinstance(generator, RowDraws):
        full = torch.rand(generator.total, *shape, device=device, generator=generator.generator)
        return full[generator.lo : generator.hi]
    return torch.rand(batch, *shape, device=device, generator=generator)


def integers(generator, low: int, high, batch: int, *shape: int, device) -> torch.Tensor:
    """Integers in [low, high) of shape `(batch, *shape)` (see `uniform`)."""
    if isinstance(generator, RowDraws):
        size = (generator.total, *shape)
        full = torch.randint(low, high, size, device=device, generator=generator.generator)
        return full[generator.lo : generator.hi]
    return torch.randint(low, high, (batch, *shape), device=device, generator=generator)


def time_shift(audio: torch.Tensor, max_shift: int, generator=None) -> torch.Tensor:
    """Shift each row of `(batch, samples)` by U{-max_shift..max_shift}, zero-filled."""
    if max_shift <= 0:
        return audio
    batch, samples = audio.shape
    shift = integers(generator, -max_shift, max_shift + 1, batch, 1, device=audio.device)
    src = torch.arange(samples, device=audio.device).unsqueeze(0) - shift  # (batch, samples)
    valid = (src >= 0) & (src < samples)
    out = torch.gather(audio, 1, src.clamp(0, samples - 1))
    return out * valid


def speed_perturb(audio: torch.Tensor, max_change: float, generator=None) -> torch.Tensor:
    """Play each row of `(batch, samples)` at a speed in [1-max_change, 1+max_change].

    Reads the signal at positions `center + (t - center) * rate` with linear interpolation, so
    the clip stays centred and keeps its length (edges beyond the source are zero).
    """
    if max_change <= 0:
        return audio
    batch, samples = audio.shape
    rate = 1 + (uniform(generator, batch, 1, device=audio.device) * 2 - 1) * max_change
    t = torch.arange(samples, device=audio.device, dtype=audio.dtype).unsqueeze(0)
    center = (samples - 1) / 2
    pos = center + (t - center) * rate  # (batch, samples)
    lo = pos.floor().long()
    frac = pos - lo
    valid = (lo >= 0) & (lo < samples - 1)
    lo = lo.clamp(0, samples - 2)
    a, b = torch.gather(audio, 1, lo), torch.gather(audio, 1, lo + 1)
    return (a + (b - a) * frac) * valid


def vtlp_factors(generator, batch: int, max_warp: float, device) -> torch.Tensor | None:
    """`(batch,)` frequency factors U[1 - max_warp, 1 + max_warp] for
    `kws.features.warp_spectrum` (VTLP, Jaitly & Hinton 2013), or None when `max_warp` is 0:
    then nothing is drawn, so the generator's later draws are those of a run without it."""
    if max_warp <= 0:
        return None
    return 1 + (uniform(generator, batch, device=device) * 2 - 1) * max_warp


def random_eq(
    audio: torch.Tensor,
    tilt_db: float,
    peak_db: float,
    sample_rate_hz: int,
    generator=None,
) -> torch.Tensor:
    """Colour each row of `(batch, samples)` with its own random equalizer.

    The gain in dB at frequency f is `tilt * log2(f / 1 kHz) / 2 + peak * bell(f)`: a tilt
    that is U[-tilt_db, tilt_db] at 4 kHz relative to 1 kHz (linear in octaves, held flat
    below 125 Hz and above 8 kHz) and one bell of U[-peak_db, peak_db] at a centre drawn
    log-uniformly in 300-6,000 Hz, half an octave wide (Gaussian in octaves). Applied as one
    real FFT over the row (circular, so the clip's ends must be quiet, as 1 s keyword clips
    are). With both limits 0 the rows are returned as they are and nothing is drawn.
    """
    if tilt_db <= 0 and peak_db <= 0:
        return audio
    batch, samples = audio.shape
    dev = audio.device
    tilt = (uniform(generator, batch, 1, device=dev) * 2 - 1) * tilt_db
    peak = (uniform(generator, batch, 1, device=dev) * 2 - 1) * peak_db
    centre_oct = math.log2(300 / 1000) + uniform(generator, batch, 1, device=dev) * math.log2(20)
    freqs = torch.fft.rfftfreq(samples, 1.0 / sample_rate_hz, device=dev)
    octaves = torch.log2(freqs.clamp(min=125.0, max=8000.0) / 1000.0).unsqueeze(0)
    gain_db = tilt * octaves / 2 + peak * torch.exp(-0.5 * ((octaves - centre_oct) / 0.5) ** 2)
    spectrum = torch.fft.rfft(audio, dim=1) * torch.pow(10.0, gain_db / 20)
    return torch.fft.irfft(spectrum, n=samples, dim=1)


def noise_slices(
    noise: torch.Tensor,
    lengths: torch.Tensor,
    file_index: torch.Tensor,
    start_fraction: torch.Tensor,
    samples: int,
) -> torch.Tensor:
    """Slices `(batch, samples)` of background files.

    Args:
        noise: `(files, max_len)` zero-padded noise bank.
        lengths: `(files,)` true lengths (each >= samples).
        file_index: `(batch,)` which file; start_fraction: `(batch,)` in [0, 1).
    """
    span = (lengths[file_index] - samples).clamp(min=0)
    start = (start_fraction * (span + 1).to(start_fraction.dtype)).long().clamp(max=span)
    idx = start.unsqueeze(1) + torch.arange(samples, device=noise.device).unsqueeze(0)
    return noise[file_index.unsqueeze(1), idx]


def mix_background(
    audio: torch.Tensor,
    is_silence: torch.Tensor,
    noise: torch.Tensor,
    lengths: torch.Tensor,
    probability: float,
    volume: float,
    silence_volume: float,
    generator=None,
    snr_db: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Add background noise to `(batch, samples)`; silence rows get noise only.

    A word row gets noise with `probability`: at gain U[0, volume] on the file's own level, or,
    with `snr_db=(low, high)`, scaled to a U[low, high] dB signal-to-noise ratio against the
    row's RMS (both RMS over the whole clip, as `kws stream-eval --benchmark` sets its SNRs).
    Both modes make the same draws, so switching changes no other random number.
    """
    batch, samples = audio.shape
    dev = audio.device
    if noise.numel() == 0:
        return audio * (~is_silence).unsqueeze(1)
    file_index = integers(generator, 0, noise.shape[0], batch, device=dev)
    start = uniform(generator, batch, device=dev)
    slices = noise_slices(noise, lengths, file_index, start, samples)
    use = uniform(generator, batch, device=dev) < probability
    draw = uniform(generator, batch, device=dev)
    if snr_db is None:
        vol = draw * volume * use
    else:
        snr = snr_db[0] + draw * (snr_db[1] - snr_db[0])
        ratio = _rms(audio) / _rms(slices).clamp(min=1e-8)
        vol = ratio * torch.pow(10.0, -snr / 20) * use
    vol = torch.where(is_silence, uniform(generator, batch, device=dev) * silence_volume, vol)
    fg = audio * (~is_silence).unsqueeze(1)
    return (fg + slices * vol.unsqueeze(1)).clamp(-1.0, 1.0)


def _rms(audio: torch.Tensor) -> torch.Tensor:
    """Root mean square of each row of `(batch, samples)`: `(batch,)`."""
    return audio.square().mean(dim=1).sqrt()


def spec_augment(
    features: torch.Tensor,
    time_masks: int,
    time_width: int,
    freq_masks: int,
    freq_width: int,
    generator=None,
) -> torch.Tensor:
    """SpecAugment masks on `(batch, frames, coeffs)`: masked cells take the row mean."""
    batch, frames, coeffs = features.shape
    dev = features.device
    keep = torch.ones_like(features, dtype=torch.bool)
    for count, width, size, axis in (
        (time_masks, time_width, frames, 1),
        (freq_masks, freq_width, coeffs, 2),
    ):
        pos = torch.arange(size, device=dev).unsqueeze(0)
        for _ in range(count):
            w = integers(generator, 0, width + 1, batch, 1, device=dev)
            s = (uniform(generator, batch, 1, device=dev) * (size - w + 1)).long()
            mask = (pos >= s) & (pos < s + w)  # (batch, size)
            keep &= ~(mask.unsqueeze(2) if axis == 1 else mask.unsqueeze(1))
    fill = features.mean(dim=(1, 2), keepdim=True)
    return torch.where(keep, features, fill)
