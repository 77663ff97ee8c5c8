"""Benchmarks: the machine line every benchmark prints (CPU model, family, ISA, cores, load).

"AMD EPYC" alone does not say which generation a VM was given, and a Zen 5 core with a full
512-bit vector unit runs the small convolutions here several times faster than an older one,
so the line adds the CPU family/model numbers and the widest vector extension.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """'<model name> (family F model M, AVX-512)' from /proc/cpuinfo, else what `platform` knows."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    details = []
    if "cpu family" in info:
        details.append(f"family {info['cpu family']} model {info.get('model', '?')}")
    if isa:
        details.append(isa)
    return f"{name} ({', '.join(details)})" if details else name


def describe() -> str:
    """'<cpu model>, N logical cores, load average L' (1-minute load, measured now)."""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu_model()}, {os.cpu_count()} logical cores{load}"
