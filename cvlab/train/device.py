"""Where PyTorch runs: the device a config asks for, and how many CPU threads.

    device, line = resolve_device("auto")    # torch.device, and a line saying what and why
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvlab.config.train import DeviceConfig
from cvlab.errors import UserError


def resolve_device(name: str) -> tuple[Any, str]:
    """torch.device for auto|cpu|cuda|mps and a line saying what was picked (and why)."""
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if cuda:
            return torch.device("cuda"), f"device: cuda ({torch.cuda.get_device_name(0)}), auto"
        if mps:
            return torch.device("mps"), "device: mps (Apple GPU), auto"
        return torch.device("cpu"), f"device: cpu ({torch.get_num_threads()} threads), auto: no GPU"
    if name == "cuda":
        if not cuda:
            raise UserError("device=cuda but no CUDA GPU is available to torch "
                            f"(torch {torch.__version__}); use device=cpu or device=auto")
        return torch.device("cuda"), f"device: cuda ({torch.cuda.get_device_name(0)})"
    if name == "mps":
        if not mps:
            raise UserError("device=mps but the Apple GPU backend is not available; "
                            "use device=cpu or device=auto")
        return torch.device("mps"), "device: mps"
    return torch.device("cpu"), f"device: cpu ({torch.get_num_threads()} threads)"


def device_name(device: Any) -> str:
    """What the run summary records: `cuda (<GPU name>)`, `cpu (<n> threads)` or `mps`."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def use_deterministic(on: bool, device: Any) -> None:
    """PyTorch's deterministic algorithms only (on), or the fastest ones (off: cuDNN picks its
    kernels by timing them). Deterministic: cuDNN benchmarking off, the cuBLAS workspace that
    deterministic matrix products need, and an error from any operation that has no
    deterministic implementation."""
    import os

    import torch

    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not on
        torch.backends.cudnn.deterministic = on


def open_device(device_cfg: DeviceConfig, announce: Callable[[str], None]) -> Any:
    """The torch.device a run trains on, set up as `device_cfg` asks: the CPU threads, the
    device (said in one line through `announce`), deterministic algorithms or the fastest
    (TF32 matrix products on CUDA)."""
    import torch

    set_torch_threads(device_cfg.threads)
    device, line = resolve_device(device_cfg.name)
    announce(line)
    use_deterministic(device_cfg.deterministic, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def set_torch_threads(threads: int | None) -> None:
    """Use `threads` CPU threads in torch (None: torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
