"""Does a model fit a device: its file in the storage apps get, its peak memory in RAM, with margins."""

from __future__ import annotations

from .profile import DeviceProfile

STORAGE_SHARE = 0.5  # the model may take at most half of the storage available to apps
RAM_SHARE = 0.5      # peak inference memory may take at most half of RAM; the rest is the OS's and the app's


def fits(profile: DeviceProfile, size_bytes: int, peak_memory_bytes: int | None) -> dict:
    """Whether a model of `size_bytes` (on disk) with `peak_memory_bytes` (resident while running) fits the device.

    Margins: the model file may use half of `storage_gb`, and inference half of `ram_mb`. Without a measured peak,
    the model size stands in for it (a lower bound: weights are resident, activations come on top).
    """
    mb = 1e6  # decimal MB, as sizes are reported everywhere in edgepack
    storage_limit = profile.storage_gb * 1000 * STORAGE_SHARE
    memory_limit = profile.ram_mb * RAM_SHARE
    size_mb = size_bytes / mb
    memory_mb = (peak_memory_bytes if peak_memory_bytes is not None else size_bytes) / mb
    storage_ok, memory_ok = size_mb <= storage_limit, memory_mb <= memory_limit
    return {
        "device": profile.name,
        "fits": storage_ok and memory_ok,
        "storage_ok": storage_ok,
        "size_mb": round(size_mb, 2),
        "storage_limit_mb": round(storage_limit, 1),
        "memory_ok": memory_ok,
        "memory_mb": round(memory_mb, 2),
        "memory_limit_mb": round(memory_limit, 1),
        "memory_measured": peak_memory_bytes is not None,
        "margin": f"model <= {STORAGE_SHARE:.0%} of app storage; peak memory <= {RAM_SHARE:.0%} of RAM"
                  + ("" if peak_memory_bytes is not None else " (no measured peak: model size used as lower bound)"),
    }
