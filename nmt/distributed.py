"""Data-parallel training through PyTorch's own stack: torchrun sets the environment, this module
opens the process group (NCCL on GPUs, gloo on CPU) and offers the few collectives the trainer uses.

Without torchrun (no WORLD_SIZE > 1) everything here is a no-op on a single process, so the
trainer has one code path.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from nmt.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, TensorBoard and reports."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """The first rank of its node: it builds what is kept node-locally (the corpus store)."""
        return self.local_rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (small host-side statistics)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun process group if there is one; returns the context and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), pick_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if device_name == "cuda" and not use_cuda:
        raise ConfigError("key 'train.device': cuda requested but no CUDA GPU is available; use auto or cpu")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        # Long validations run on rank 0 while the others wait in a barrier.
        timeout = timedelta(hours=2)
        dist.init_process_group(
            "nccl" if use_cuda else "gloo", store=_attempt_store(timeout), rank=rank, world_size=world, timeout=timeout
        )
    return Distributed(rank=rank, world_size=world, local_rank=local_rank), device


def _attempt_store(timeout: timedelta) -> dist.Store:
    """torchrun's key-value store, namespaced by restart attempt.

    After `--max-restarts` restarts the workers, torchrun's store still holds the previous attempt's
    rank addresses; without a fresh namespace a restarted rank may dial a dead peer and fail.
    """
    store, _, _ = next(dist.rendezvous("env://", timeout=timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"nmt/attempt_{attempt}/", store)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(code: int) -> NoReturn:
    """End a torchrun worker with `code` without running interpreter finalization.

    Gloo keeps its worker threads (and the DDP reducer keeps the process group) past
    destroy_process_group. A worker thread that releases a finished collective's tensors needs
    the GIL; if that happens while the interpreter finalizes, the thread is torn down inside a
    C++ destructor and the process aborts ("terminate called without an active exception"),
    so torchrun reports a run that had finished and saved as failed. Everything the run writes
    is closed or atomically saved by now; only the standard streams and log handlers need a flush.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def pick_device(name: str) -> torch.device:
    """`auto`: CUDA if present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("key 'train.device': cuda requested but no CUDA GPU is available; use auto or cpu")
    return torch.device(name)
