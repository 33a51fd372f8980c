"""
system.py — where the numbers are computed: device, precision, CPU threads, processes.

Place in the story: none; every script that runs a model (train, evaluate,
sample, bench) asks here for its device, precision and number of CPU threads,
so `--device=cuda` on a machine without CUDA is the same one-line error
everywhere, and a laptop busy with other work does not slow training down.

Why threads are chosen, not left at PyTorch's default (one per core): PyTorch's
OpenMP threads spin while they wait for each other. When another program keeps
one of two cores busy, two spinning threads fight it for the core and training
runs 3.4x slower than with one thread (measured: README, Performance). So
`--threads=auto` looks at how busy the cores are for a quarter of a second at
start-up and uses only the ones that are free.

Under torchrun, train.py's processes meet here too: they join the process group,
vote together on stopping, compare fingerprints of their weights at the end,
and leave the group in the order that lets Python exit cleanly.
"""

import gc
import hashlib
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from plumbing.cli import UserError


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


def allowed_cores():
    """The set of cores this process may run on (a container or taskset may allow fewer than the
    machine has), or None where the system does not say."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def usable_cores():
    """How many cores this process may run on."""
    cores = allowed_cores()
    return len(cores) if cores is not None else (os.cpu_count() or 1)


def cpu_ticks(stat_text, cores):
    """(busy, total, n) CPU ticks summed over the per-core lines of /proc/stat's text for the cores in
    `cores` (None: all), and how many such lines there were. Idle and iowait count as not busy."""
    busy = total = n = 0
    for line in stat_text.splitlines():
        name, *values = line.split() or [""]
        if name.startswith("cpu") and name[3:].isdigit() and (cores is None or int(name[3:]) in cores):
            fields = [int(v) for v in values]
            busy, total, n = busy + sum(fields) - fields[3] - fields[4], total + sum(fields), n + 1
    return busy, total, n


def busy_cores(seconds=0.25):
    """How many of the cores this process may use other programs keep busy right now: their non-idle
    time over a short sleep (Linux's /proc/stat, only the lines of those cores, so a container pinned
    to some cores is not misled by the others), minus this process's own. None where /proc/stat is missing."""
    cores = allowed_cores()

    def read():
        with open("/proc/stat") as f:
            return cpu_ticks(f.read(), cores), sum(os.times()[:2])  # this process's user + system seconds
    try:
        (busy0, total0, n), own0 = read()
        time.sleep(seconds)
        (busy1, total1, _), own1 = read()
    except (OSError, ValueError, IndexError):
        return None
    if n == 0:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    wall_ticks = max(total1 - total0, 1) / n  # ticks per core in the window
    others = (busy1 - busy0) - (own1 - own0) * ticks
    return max(0.0, others / wall_ticks)


def choose_threads(requested="auto", processes=1):
    """(threads, why): --threads=N as asked, or for auto the cores not busy with other work,
    shared among this machine's `processes` (DDP or concurrent stages)."""
    cores = max(1, usable_cores() // processes)
    if requested != "auto":
        if not str(requested).isdigit() or int(requested) < 1:
            raise UserError(f"--threads={requested} must be auto or a whole number >= 1")
        return int(requested), "set by --threads"
    busy = busy_cores()
    if busy is None:
        return cores, f"auto: {cores} core(s)"
    free = max(1, min(cores, round(usable_cores() - busy) // processes))
    return free, f"auto: {cores} core(s), {busy:.1f} busy with other work"


def set_threads(requested="auto", processes=1):
    """Choose and apply the number of CPU threads; return the start-up line's words for it."""
    n, why = choose_threads(requested, processes)
    torch.set_num_threads(n)
    return f"{n} thread{'s' if n > 1 else ''} ({why})"


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
    threads: int     # CPU threads of this process
    threads_why: str

    @property
    def master(self):  # the process that evaluates, logs and saves
        return self.rank == 0


def processes():
    """(ddp, rank, world): whether torchrun started this process, its rank and how many there are."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    return (ddp, int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (False, 0, 1)


def set_up_system(args):
    """Device, precision, processes (DDP under torchrun), seeds."""
    ddp, rank, world = processes()
    device = resolve_device(args.device)
    if ddp:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    device_type = device.split(":")[0]
    dtype = pick_dtype(args.dtype, device_type)
    threads_why = set_threads(args.threads, world)
    torch.manual_seed(args.seed + rank)
    return System(device, device_type, dtype, autocast(device_type, dtype), ddp, rank, world,
                  torch.get_num_threads(), threads_why)


# ----------------------------------------------------------------------------
# processes under torchrun (DDP)


def any_process(device, *flags):
    """Each flag is true on every process if it is true on any one: under DDP all processes must stop
    at the same step, so one's Ctrl-C or non-finite loss stops all."""
    votes = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(votes)
    return tuple(v > 0 for v in votes.tolist())


def weights_fingerprint(model):
    """16 hex digits of a SHA-256 over every tensor's bytes: equal only for bit-identical weights."""
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def same_weights_everywhere(model, world):
    """(whether every process holds bit-identical weights, this process's fingerprint)."""
    fingerprints = [None] * world
    dist.all_gather_object(fingerprints, weights_fingerprint(model))
    return len(set(fingerprints)) == 1, fingerprints[0]


def leave_process_group():
    """Destroy the process group, once the caller has dropped its DDP wrapper. The wrapper holds the
    group's worker threads; left for Python's exit to clean up, they can abort a finished run at the
    very end ("terminate called without an active exception": 3 of 32 two-process runs here with
    one core busy, 0 of 80 this way)."""
    gc.collect()
    dist.destroy_process_group()
