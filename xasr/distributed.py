"""Running under torchrun: rank and world size from its environment, the process group, and
splitting work between ranks. Everything is a no-op for a single process."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

from xasr.io import atomic_path

T = TypeVar("T")


class DistributedContext:
    """rank/world size from torchrun's environment (NCCL on GPUs, gloo on CPUs)."""

    def __init__(self, device: str | torch.device | None = None):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is not None:
            self.device = torch.device(device)
            if self.device.type == "cuda" and self.device.index is None:
                self.device = torch.device("cuda", self.local_rank)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item() / self.world_size)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list:
        """Every rank's `value`, in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


def shard_by_duration(items: Sequence[T], num_shards: int, duration: Callable[[T], float]) -> list[list[int]]:
    """Indices of `items` per shard, balanced by total duration (longest first, each to the shard
    with the least so far); each shard's indices in input order."""
    shards: list[list[int]] = [[] for _ in range(num_shards)]
    loads = [0.0] * num_shards
    for index in sorted(range(len(items)), key=lambda i: -duration(items[i])):
        lightest = min(range(num_shards), key=lambda s: (loads[s], s))
        shards[lightest].append(index)
        loads[lightest] += duration(items[index])
    return [sorted(shard) for shard in shards]


class Spool:
    """A folder where the other ranks leave finished results for rank 0, one pickle each, written
    atomically: rank 0 writes every output, and a result finished before a stop is not lost."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def put(self, rank: int, index: int, value: Any) -> None:
        with atomic_path(self.directory / f"{rank:03d}-{index:08d}.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(value))

    def take(self) -> list:
        """The results left so far, each once (their files are removed)."""
        values = []
        for path in sorted(self.directory.glob("*.pkl")):
            values.append(pickle.loads(path.read_bytes()))
            path.unlink()
        return values
