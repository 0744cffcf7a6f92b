"""Independent pieces of torch work run side by side in Python threads, each on one torch thread.

Small networks (the training consumer's arms, the pixel classifier's folds) and small batches
(registration's 128 pairs of thumbnails) gain little from torch's own threads: torch splits each
small operation among them and they meet at a barrier after it, which waits whenever anything else
uses the cores. Run side by side, one torch thread each, they keep every core busy without those
meetings, and what each computes is the same however many ran beside it (a convolution's float sums
depend on how many threads share it). torch releases the GIL in its kernels.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

__all__ = ["map_side_by_side"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def map_side_by_side(work: Callable[[_T], _R], items: Iterable[_T], workers: int, *,
                     name: str = "side-by-side") -> list[_R]:
    """`[work(item) for item in items]`, in order, with up to `workers` calls at once in threads
    (one: in this thread). torch's thread count is 1 while they run and restored after; the first
    exception a call raises is raised here."""
    import torch

    items = list(items)
    workers = max(1, min(int(workers), len(items)))
    # torch's thread count is the process's, and a thread takes it when it first runs an operation:
    # set before the workers start, and left alone by them (a worker's set-and-restore could hand a
    # count to work still running beside it).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers == 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
            return list(pool.map(work, items))
    finally:
        torch.set_num_threads(previous)
