"""What this machine can offer: CPU cores, RAM, NVIDIA GPUs and usable ffmpeg encoders."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.common.ffmpeg import usable_encoders

__all__ = [
    "NVENC_SESSIONS_PER_GPU",
    "Capacity",
    "default_labels",
    "detect_capacity",
    "detect_cpu",
    "detect_gpus",
    "detect_ram_gb",
    "parse_nvidia_smi",
]

#: Concurrent NVENC sessions assumed per GPU (consumer drivers allow 5-8; datacenter cards
#: more). Conservative on purpose; override with ``--nvenc-sessions``.
NVENC_SESSIONS_PER_GPU = 3


@dataclass(frozen=True)
class Capacity:
    """A node's offer to the master, in the register payload's shape."""

    cpu: float
    ram_gb: float
    gpu: int
    nvenc_sessions: int
    encoders: tuple[str, ...]
    gpu_names: tuple[str, ...] = ()

    def to_register(self) -> dict[str, Any]:
        """The ``capacity`` object of ``POST /nodes/register``."""
        return {
            "cpu": self.cpu,
            "ram_gb": self.ram_gb,
            "gpu": self.gpu,
            "extended": {"nvenc_sessions": self.nvenc_sessions},
        }


def _cgroup_cpu_limit() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def detect_cpu() -> float:
    """Cores this process may use: its CPU affinity, lowered by a cgroup v2 quota if any."""
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = float(os.cpu_count() or 1)
    limit = _cgroup_cpu_limit()
    return round(min(cores, limit), 2) if limit else cores


def detect_ram_gb() -> float:
    """Total RAM in GB (``/proc/meminfo``), lowered by a cgroup v2 memory limit if any."""
    total: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024 / 1e9
                break
    except OSError:
        pass
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
        except (ValueError, OSError, AttributeError):
            total = 1.0
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            total = min(total, int(limit) / 1e9)
    except (OSError, ValueError):
        pass
    return round(total, 2)


def parse_nvidia_smi(output: str) -> tuple[str, ...]:
    """GPU names from ``nvidia-smi --query-gpu=name --format=csv,noheader`` output."""
    return tuple(line.strip() for line in output.splitlines() if line.strip())


def detect_gpus(nvidia_smi: str | None = None, *, timeout: float = 10.0) -> tuple[str, ...]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` lists; empty when it is absent or fails."""
    binary = nvidia_smi or shutil.which("nvidia-smi")
    if binary is None:
        return ()
    try:
        done = subprocess.run(  # noqa: S603 (argv list, no shell)
            [binary, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else ()


def detect_capacity(
    ffmpeg: str,
    *,
    cpu: float | None = None,
    ram_gb: float | None = None,
    gpu: int | None = None,
    nvenc_sessions: int | None = None,
) -> Capacity:
    """Detect everything not given explicitly.

    Hardware encoders are probed only when a GPU is present (or ``gpu`` is given), so a
    machine without one skips the slow test encodes; NVENC sessions default to
    :data:`NVENC_SESSIONS_PER_GPU` per GPU when an NVENC encoder works, else 0.
    """
    gpu_names = detect_gpus() if gpu is None else ()
    gpus = len(gpu_names) if gpu is None else gpu
    encoders = usable_encoders(ffmpeg, check_hardware=gpus > 0)
    if nvenc_sessions is None:
        has_nvenc = any(name.endswith("_nvenc") for name in encoders)
        nvenc_sessions = gpus * NVENC_SESSIONS_PER_GPU if has_nvenc else 0
    return Capacity(
        cpu=detect_cpu() if cpu is None else cpu,
        ram_gb=detect_ram_gb() if ram_gb is None else ram_gb,
        gpu=gpus,
        nvenc_sessions=nvenc_sessions,
        encoders=tuple(sorted(encoders)),
        gpu_names=gpu_names,
    )


def default_labels() -> dict[str, str]:
    """Labels every worker sends: operating system and architecture."""
    return {"os": platform.system().lower(), "arch": platform.machine().lower()}
