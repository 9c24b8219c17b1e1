"""FLOPs of the engine's own forward passes, and the fraction of a GPU's peak they achieve.

FLOPs are counted, not estimated: `torch.utils.flop_counter.FlopCounterMode` sees every matmul,
convolution and attention kernel the models actually run (2 FLOPs per multiply-add), so the
figure follows the models' real shapes, batch size and any layers a config skips.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode

from nerve_core.timing import StageTimer

# Dense (no structured sparsity) peak TFLOP/s from NVIDIA's data sheets, by the substring of
# `torch.cuda.get_device_name()` that identifies the part; first match wins. fp32 is the
# non-tensor-core rate (PyTorch matmuls do not use TF32 unless allowed); tf32 the tensor-core one.
GPU_PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"float16": 756.0, "bfloat16": 756.0, "tf32": 378.0, "float32": 51.2}),
    ("H100", {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9}),  # SXM5
    ("H200", {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9}),  # SXM, same die
    ("A100", {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5}),
]


class FlopStageTimer(StageTimer):
    """A StageTimer that also counts the FLOPs run inside each stage (nested stages count in both).

    Swapped in for an engine's timer for one counted batch: the engine needs no change to report
    FLOPs per stage.
    """

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.flops: dict[str, int] = defaultdict(int)

    @contextmanager
    def stage(self, name: str):
        counter = FlopCounterMode(display=False)
        with counter, super().stage(name):
            yield
        self.flops[name] += counter.get_total_flops()


def peak_tflops(device: torch.device, dtype: torch.dtype, override: float = 0.0) -> tuple[float | None, str]:
    """(peak TFLOP/s, where the figure comes from) for `dtype` on a CUDA `device`; None on CPU or an unknown GPU."""
    if override > 0:
        return override, "config"
    device = torch.device(device)
    if device.type != "cuda":
        return None, "cpu: no reference peak"
    name = torch.cuda.get_device_name(device)
    key = str(dtype).removeprefix("torch.")
    if key == "float32" and torch.backends.cuda.matmul.allow_tf32:
        key = "tf32"
    for part, peaks in GPU_PEAK_TFLOPS:
        if part in name and key in peaks:
            return peaks[key], f"data sheet: {part} {key} dense"
    return None, f"unknown GPU {name!r}: set peak_tflops"


def achieved_fraction(flops: float, seconds: float, peak: float | None) -> float | None:
    """Fraction of peak: FLOPs / seconds / (peak TFLOP/s · 1e12)."""
    if not peak or seconds <= 0:
        return None
    return flops / seconds / (peak * 1e12)
