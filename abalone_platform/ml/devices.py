"""Whether a CUDA device is present, asked of the driver directly (no framework import)."""

from __future__ import annotations

import ctypes


def cuda_device_count() -> int:
    """CUDA devices the driver reports; 0 without a driver or a device."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


if __name__ == "__main__":
    print(f"cuda devices: {cuda_device_count()}")
