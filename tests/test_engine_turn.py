"""The engine turn and a shard's batches in flight (pipeline/run/engine_turn.py) on a fake engine:
pure threading, no torch, no Ray. Shards on one actor never interleave their batches, no two
batches ever run at once, and encoding keeps each shard's batch order."""
import threading
import time

import pytest

from pipeline.run.engine_turn import EngineTurn, ShardBatches, engine_thread


class _FakeEngine:
    """Counts the batches inside `run` at once (recorded, never raised, so nothing can swallow it)."""

    def __init__(self, seconds: float = 0.01):
        self.seconds, self.lock, self.order = seconds, threading.Lock(), []
        self.inside = self.most_inside = 0

    def run(self, shard: str, batch: int) -> tuple[str, int]:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.order.append(shard)
        time.sleep(self.seconds)
        with self.lock:
            self.inside -= 1
        return shard, batch


def _label(shard: str, batches: int, engine: _FakeEngine, turn_lock: threading.Lock, thread, encoded: dict) -> float:
    """One shard's call as the labeler makes it: batches queued during its turn, encoded in order."""
    def flush(batch, in_flight):
        in_flight.encode(encoded.setdefault(shard, []).append, engine.run(shard, batch))

    with ShardBatches(thread) as in_flight, EngineTurn(turn_lock, lambda b: in_flight.engine(flush, b, in_flight)) as turn:
        for batch in range(batches):
            time.sleep(0.002)  # reading and decoding the next batch
            turn(batch)
    return turn.waited


@pytest.mark.parametrize("shards", [2, 4])
def test_shards_take_whole_turns_and_batches_never_overlap(shards):
    engine, lock, thread, encoded, waited = _FakeEngine(), threading.Lock(), engine_thread(), {}, {}

    def call(name):
        waited[name] = _label(name, 5, engine, lock, thread, encoded)

    threads = [threading.Thread(target=call, args=(f"s{i}",)) for i in range(shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.most_inside == 1
    runs = [engine.order[0]] + [b for a, b in zip(engine.order, engine.order[1:]) if a != b]
    assert sorted(runs) == sorted(encoded) and len(runs) == shards  # each shard's batches in one unbroken turn
    assert all(encoded[s] == [(s, b) for b in range(5)] for s in encoded)
    assert sum(w > 0.02 for w in waited.values()) >= shards - 1  # the later shards waited for their turn


def test_a_failing_batch_is_raised_and_the_turn_is_given_back():
    lock, thread = threading.Lock(), engine_thread()

    def boom(batch, in_flight):
        raise RuntimeError("batch failed")

    with pytest.raises(RuntimeError, match="batch failed"):
        with ShardBatches(thread) as in_flight, EngineTurn(lock, lambda b: in_flight.engine(boom, b, in_flight)) as turn:
            turn(0)
    assert lock.acquire(blocking=False)  # the next shard can take its turn
