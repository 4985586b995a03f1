import math

import pytest

from unetseg.parallel import ordered_map, worker_pool


def counted(items, drawn):
    for item in items:
        drawn.append(item)
        yield item


def test_ordered_map_in_workers_gives_map_in_order_drawing_only_a_few_ahead():
    drawn = []
    with worker_pool(2, "spawn") as pool:
        results = ordered_map(pool, math.sqrt, counted(range(40), drawn), ahead=3)
        assert next(results) == 0.0 and len(drawn) == 3  # the first result after three items were drawn
        assert [0.0, *results] == [math.sqrt(i) for i in range(40)]


def test_without_a_pool_ordered_map_is_map():
    with worker_pool(1) as pool:
        assert pool is None
        assert list(ordered_map(pool, math.sqrt, [4, 9])) == [2.0, 3.0]


def test_an_error_in_a_worker_reaches_the_caller():
    with worker_pool(2, "spawn") as pool:
        results = ordered_map(pool, int, ["1", "two", "3"])
        assert next(results) == 1
        with pytest.raises(ValueError, match="two"):
            next(results)
