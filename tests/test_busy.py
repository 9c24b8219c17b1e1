"""Busy seconds kept as shards finish (BusySpans) against the union over every shard's span, and a
progress counter that holds only the running attempts."""
import numpy as np

from pipeline.output.shard_stats import ShardStats
from pipeline.run.busy import BusySpans, busy_seconds
from pipeline.run.progress_counter import ProgressCounter


def test_busy_spans_folded_one_by_one_equal_the_union_of_all_spans():
    rng = np.random.default_rng(0)
    stats = []
    for pid in (1, 2, 3):
        clock = 0.0
        for i in range(200):  # shards handed over ahead overlap the one before; idle gaps between some
            start = clock - rng.random() * 0.5 if rng.random() < 0.5 else clock + rng.random() * 2
            clock = start + rng.random() * 3
            stats.append(ShardStats(f"s{pid}-{i}", actor={"host": "h", "pid": pid}, started_at=start, finished_at=clock,
                                    seconds={"total": clock - start}))
    spans = BusySpans()
    for s in (stats[i] for i in rng.permutation(len(stats))):  # in any order, as results arrive
        spans.add(s)
    expected = busy_seconds(stats)
    assert spans.seconds().keys() == expected.keys()
    for pid, seconds in spans.seconds().items():
        assert abs(seconds - expected[pid]) < 1e-9 * seconds
    assert max(len(v) for v in spans._intervals.values()) < 200  # merged, not one per shard


def test_the_progress_counter_forgets_attempts_that_no_longer_run():
    counter = ProgressCounter()
    for shard in range(1000):
        counter.add(f"s{shard}", 0, 3, 1)
    assert counter.snapshot([("s998", 0), ("s999", 0), ("s5", 1)]) == {("s998", 0): (3, 1), ("s999", 0): (3, 1)}
    assert len(counter.counts) == 2
