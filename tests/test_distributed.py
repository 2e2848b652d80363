"""Splitting work between torchrun ranks, and the spool through which they hand results to rank 0."""

from xasr.distributed import DistributedContext, Spool, shard_by_duration


def test_shards_balance_duration_and_keep_input_order():
    durations = [9.0, 1.0, 4.0, 4.0, 2.0, 8.0, 1.0]
    shards = shard_by_duration(durations, 2, lambda d: d)
    assert sorted(i for shard in shards for i in shard) == list(range(7))  # each input once
    assert all(shard == sorted(shard) for shard in shards)
    loads = [sum(durations[i] for i in shard) for shard in shards]
    assert abs(loads[0] - loads[1]) <= 1.0  # 15 and 14 s; a round-robin split gives 16 and 13
    assert shard_by_duration(durations, 1, lambda d: d) == [list(range(7))]
    assert shard_by_duration([], 3, lambda d: d) == [[], [], []]


def test_spool_hands_each_result_over_once(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put(1, 0, {"id": "a"})
    spool.put(2, 0, {"id": "b"})
    spool.put(1, 1, {"id": "c"})
    assert spool.take() == [{"id": "a"}, {"id": "c"}, {"id": "b"}]  # by rank, then finishing order
    assert spool.take() == []


def test_a_single_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = DistributedContext("cpu")
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert context.broadcast({"x"}) == {"x"} and context.gather(3) == [3]
