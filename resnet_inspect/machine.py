"""What this machine has: free memory per device and the CPU's name (from /proc where there is one)."""

from __future__ import annotations

import os
import platform
from typing import Any


def _proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file, or None."""
    try:
        with open(path) as lines:
            for line in lines:
                name, sep, value = line.partition(":")
                if sep and name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def available_bytes(device: Any) -> int:
    """Memory free for new tensors on a torch.device (CUDA: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    value = _proc_field("/proc/meminfo", "MemAvailable")
    if value is not None:
        return int(value.split()[0]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cpu_name() -> str:
    """The CPU's model name."""
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
