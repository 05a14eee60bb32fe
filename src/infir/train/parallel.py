"""Distributed setup, applied from outside the model code (torchtitan's rule).

Under `torchrun`, the process group comes from the environment; `fully_shard` (FSDP2) wraps each
decoder layer and then the root. Single-process runs skip all of it. CPU runs use gloo; CUDA runs
use NCCL for tensors on the GPU and gloo for the CPU-side coordination (`cpu:gloo,cuda:nccl`).

Every collective goes through the helpers below, and they put what they send on the process group's
device (`DistInfo.device`): NCCL takes CUDA tensors only, so a count built with a bare
`torch.tensor(...)` (a CPU tensor) would fail the first multi-GPU step.

A stage that runs on one rank while the others wait (`solo()`) sees a single-process `DistInfo`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


_SOLO = False


def launched_ranks() -> tuple[int, int]:
    """(rank, world size) as torchrun set them; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def solo():
    """Within it, `init_distributed` describes one process: the stage runs on this rank alone."""
    global _SOLO
    before, _SOLO = _SOLO, True
    try:
        yield
    finally:
        _SOLO = before


def init_distributed(requested_device: str = "auto") -> DistInfo:
    rank, world = launched_ranks()
    device = pick_device(requested_device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world <= 1 or _SOLO:
        return DistInfo(device=device)
    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def apply_fsdp(model, info: DistInfo, param_dtype: torch.dtype | None = None):
    """Shard each decoder layer, then the root. Mixed precision keeps fp32 master weights."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(info.device.type, (info.world_size,))
    mp = (
        MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
        if param_dtype
        else MixedPrecisionPolicy()
    )
    layers = _decoder_layers(model)
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def _decoder_layers(model) -> list:
    inner = getattr(model, "model", model)
    for attr in ("layers", "language_model"):
        found = getattr(inner, attr, None)
        if found is not None and attr == "layers":
            return list(found)
        if found is not None:
            return _decoder_layers(found)
    return []


def full_model_state_dict(model, info: DistInfo) -> dict | None:
    """The unsharded state dict on CPU (on rank 0 only when distributed)."""
    if not info.distributed:
        return None  # save_pretrained reads the module itself
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return sd if info.is_main else None


def all_reduce_sum(value: torch.Tensor | float, info: DistInfo) -> torch.Tensor:
    """The sum over ranks, on `info.device`. A number or a tensor on another device is moved there
    first: what a collective receives lives where the process group needs it."""
    tensor = (
        value.to(info.device) if torch.is_tensor(value) else torch.tensor(float(value), device=info.device)
    )
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_over_ranks(*values: float, info: DistInfo) -> list[float]:
    """Several numbers summed over ranks in one collective."""
    if not info.distributed:
        return [float(v) for v in values]
    return all_reduce_sum(
        torch.tensor([float(v) for v in values], dtype=torch.float64, device=info.device), info
    ).tolist()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


_COORDINATION = None


def coordination_group(hours: float = 72.0):
    """A gloo group for ranks that wait on one rank's stage (curate can take hours; NCCL's and the
    default group's timeouts are minutes). Created once, on every rank, in the same order."""
    global _COORDINATION
    if _COORDINATION is None:
        _COORDINATION = dist.new_group(backend="gloo", timeout=timedelta(hours=hours))
    return _COORDINATION


def wait_for_all(info: DistInfo) -> None:
    """A barrier over the coordination group: for waits on CPU work of unknown length."""
    if info.distributed:
        dist.barrier(group=coordination_group())


def broadcast_from_main(obj, info: DistInfo, group=None):
    """Rank 0's `obj` on every rank (a picklable value)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def shutdown(synchronize: bool = False) -> None:
    """Leave the process group (torchrun's ranks exit cleanly, without NCCL's teardown warnings).

    `synchronize` waits for every rank first: a rank that tears gloo down while a peer still has work in
    flight can abort that peer (SIGABRT, "terminate called without an active exception"). Only on
    success: after a failure the other ranks may never arrive."""
    global _COORDINATION
    if dist.is_initialized():
        if synchronize:
            dist.barrier(group=coordination_group())
        dist.destroy_process_group()
    _COORDINATION = None
