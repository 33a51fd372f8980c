"""
system.py — where the numbers are computed: device, precision, CPU threads.

Place in the story: none; every script that runs a model (train, evaluate,
sample, bench) asks here for its device and precision, so `--device=cuda` on a
machine without CUDA is the same one-line error everywhere.
"""

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cli import UserError


def autodetect_device():
    """cuda, then mps, then cpu (nanochat's order)."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(requested):
    """The device to use for --device=requested, or one line saying why it cannot be used."""
    if requested == "auto":
        return autodetect_device()
    kind, _, index = requested.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise UserError(f"--device={requested} is not a device: use auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device={requested}, but this machine has no CUDA GPU (or this torch has no CUDA "
                            "support): use --device=auto or --device=cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"--device={requested}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise UserError("--device=mps, but Apple's Metal (MPS) is not available here: use --device=auto or --device=cpu")
    return requested


def pick_dtype(requested, device_type):
    """float32 or bfloat16: bfloat16 autocast where the hardware does it fast (CUDA, and CPUs with AVX-512 BF16/AMX)."""
    if requested != "auto":
        return requested
    if device_type == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    if device_type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bfloat16"
    return "float32"


def autocast(device_type, dtype):
    """The context the forward passes run in: bfloat16 autocast, or nothing for float32."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()


@dataclass
class System:
    """Where and how this process computes."""
    device: str
    device_type: str
    dtype: str
    ctx: object      # the autocast context of every forward pass
    ddp: bool        # started by torchrun
    rank: int
    world: int

    @property
    def master(self):  # the process that evaluates, logs and saves
        return self.rank == 0


def set_up_system(args):
    """Device, precision, processes (DDP under torchrun), seeds."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = resolve_device(args.device)
    if ddp:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    device_type = device.split(":")[0]
    dtype = pick_dtype(args.dtype, device_type)
    torch.manual_seed(args.seed + rank)
    return System(device, device_type, dtype, autocast(device_type, dtype), ddp, rank, world)
