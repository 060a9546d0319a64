from __future__ import annotations

import os
import time

import numpy as np
import pytest

from datatools.core.errors import InvalidDatasetError
from datatools.core.parallel import item_seed, parallel_map


def _pid_and_square(x: int) -> tuple[int, int]:
    time.sleep(0.005)  # long enough that one worker cannot drain the queue before the other starts
    return os.getpid(), x * x


def _draw(x: int, seed: int) -> tuple[int, float]:
    return x, float(np.random.default_rng(seed).random())


def _boom(x: int) -> int:
    if x == 3:
        raise InvalidDatasetError(f"item {x}: broken")
    return x


def test_results_are_ordered_and_use_several_processes() -> None:
    out = parallel_map(_pid_and_square, list(range(60)), workers=2, progress=False, chunksize=1)
    assert [sq for _, sq in out] == [x * x for x in range(60)]
    assert len({pid for pid, _ in out}) == 2
    assert os.getpid() not in {pid for pid, _ in out}


def test_per_item_seeds_do_not_depend_on_workers() -> None:
    one = parallel_map(_draw, list(range(50)), workers=1, seed=42, progress=False)
    two = parallel_map(_draw, list(range(50)), workers=2, seed=42, progress=False)
    other = parallel_map(_draw, list(range(50)), workers=2, seed=43, progress=False)
    assert one == two
    assert one != other
    assert len({v for _, v in one}) == 50
    assert item_seed(42, 0) != item_seed(42, 1) and item_seed(42, 5) == item_seed(42, 5)


@pytest.mark.parametrize("workers", [1, 2])
def test_errors_propagate_with_their_type(workers: int) -> None:
    with pytest.raises(InvalidDatasetError, match="item 3: broken"):
        parallel_map(_boom, list(range(10)), workers=workers, progress=False)


def test_empty_input() -> None:
    assert parallel_map(_boom, [], workers=2, progress=False) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_imap_yields_in_order_before_the_last_item_is_done(workers: int) -> None:
    from datatools.core.parallel import parallel_imap

    items = list(range(40))
    stream = parallel_imap(_pid_and_square, items, workers=workers, progress=False, chunksize=1)
    first = next(stream)
    assert first[1] == 0
    rest = [sq for _, sq in stream]
    assert rest == [x * x for x in items[1:]]


def test_imap_stops_its_workers_when_abandoned() -> None:
    from datatools.core.parallel import parallel_imap

    stream = parallel_imap(_pid_and_square, list(range(40)), workers=2, progress=False, chunksize=1)
    pid, _ = next(stream)
    stream.close()  # the generator's finally terminates the pool
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("worker still alive after the stream was closed")


def test_the_collector_is_frozen_only_while_the_pool_lives() -> None:
    import gc

    from datatools.core.parallel import parallel_imap

    before = gc.get_freeze_count()
    stream = parallel_imap(_pid_and_square, list(range(8)), workers=2, progress=False, chunksize=1)
    next(stream)
    assert gc.get_freeze_count() > before  # objects made before the fork are left to the workers as they are
    assert [sq for _, sq in stream] == [x * x for x in range(1, 8)]
    assert gc.get_freeze_count() == 0


def test_guided_batches_shrink_and_cover_every_item() -> None:
    from datatools.core.parallel import guided_batches

    for n, workers in [(0, 2), (1, 2), (7, 3), (512, 2), (1000, 16)]:
        sizes = guided_batches(n, workers)
        assert sum(sizes) == n and all(s >= 1 for s in sizes)
        assert sizes == sorted(sizes, reverse=True), "batches only shrink"
        if n >= 100:
            assert sizes[-1] == 1 and len(sizes) < n // 4, "few batches, single items at the end"
    assert len(guided_batches(512, 2)) < 40  # against 64 chunks of 8


def test_guided_map_keeps_order_and_seeds() -> None:
    items = list(range(101))
    fixed = parallel_map(_draw, items, workers=2, seed=5, progress=False)
    guided = parallel_map(_draw, items, workers=2, seed=5, progress=False, chunksize="guided")
    assert guided == fixed == [_draw(i, item_seed(5, i)) for i in items]
