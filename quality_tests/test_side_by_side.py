import threading

import pytest
import torch

from quality_assets.side_by_side import map_side_by_side


@pytest.fixture
def torch_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(previous)


@pytest.mark.parametrize("workers", [1, 2, 3, 10])
def test_results_come_in_order_each_on_one_torch_thread_and_torchs_threads_are_restored(torch_threads, workers):
    seen = []

    def work(k: int) -> tuple[int, float]:
        seen.append((threading.get_ident(), torch.get_num_threads()))
        x = torch.full((64, 64), float(k))
        return k, float((x @ x).sum())

    results = map_side_by_side(work, range(7), workers)
    assert [k for k, _ in results] == list(range(7))
    assert [total for _, total in results] == [float(k * k * 64 * 64 * 64) for k in range(7)]
    assert {threads for _, threads in seen} == {1}
    assert torch.get_num_threads() == torch_threads
    threads_used = {ident for ident, _ in seen}
    if workers == 1:
        assert threads_used == {threading.get_ident()}
    else:
        assert threading.get_ident() not in threads_used and len(threads_used) <= workers


@pytest.mark.parametrize("workers", [1, 3])
def test_a_failing_call_raises_here_and_torchs_threads_are_restored(torch_threads, workers):
    def work(k: int) -> int:
        if k == 4:
            raise ValueError("bad item 4")
        return k

    with pytest.raises(ValueError, match="bad item 4"):
        map_side_by_side(work, range(6), workers)
    assert torch.get_num_threads() == torch_threads


def test_no_items_and_odd_worker_counts_give_the_plain_map(torch_threads):
    assert map_side_by_side(lambda k: k + 1, [], 4) == []
    assert map_side_by_side(lambda k: k + 1, [1, 2], 0) == [2, 3]
    assert map_side_by_side(lambda k: k + 1, [1, 2], -3) == [2, 3]
    assert torch.get_num_threads() == torch_threads
