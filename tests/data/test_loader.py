"""Batch iteration: full-batch / stochastic / mini-batch gradient descent, shuffling, resumable state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descend.data import Loader, batches, from_arrays
from descend.data import loader as loader_module
from descend.errors import DataError


def toy(n=10, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)  # row i starts with i*d: identifies the sample
    return from_arrays(x, np.arange(n) % 3)


def ids(xb, d=3):
    return (xb[:, 0] // d).astype(int).tolist()


def epoch_ids(loader):
    return [i for xb, _ in loader for i in ids(xb)]


@pytest.mark.parametrize(
    ("batch_size", "drop_last", "sizes"),
    [
        (None, False, [10]),  # batch gradient descent
        (1, False, [1] * 10),  # stochastic gradient descent
        (3, False, [3, 3, 3, 1]),  # mini-batch
        (3, True, [3, 3, 3]),
        (5, True, [5, 5]),
        (10, False, [10]),
        (64, False, [10]),
    ],
)
def test_batch_counts_and_sizes(batch_size, drop_last, sizes):
    loader = Loader(toy(), batch_size, seed=0, drop_last=drop_last)
    got = [len(yb) for _, yb in loader]
    assert got == sizes and len(loader) == len(sizes)
    assert loader.batch_size == (10 if batch_size is None else batch_size)


@pytest.mark.parametrize("batch_size", [None, 1, 3, 4, 10])
def test_every_sample_exactly_once_per_epoch(batch_size):
    ds = toy(n=10)
    loader = Loader(ds, batch_size, seed=1)
    for _ in range(3):
        seen = []
        for xb, yb in loader:
            seen += ids(xb)
            np.testing.assert_array_equal(yb, ds.y[ids(xb)])  # labels travel with their samples
        assert sorted(seen) == list(range(10))


def test_drop_last_drops_only_the_remainder_and_rotates_it():
    loader = Loader(toy(n=10), 3, seed=0, drop_last=True)
    dropped = []
    for _ in range(6):
        seen = epoch_ids(loader)
        assert len(seen) == 9 and len(set(seen)) == 9
        dropped.append(next(iter(set(range(10)) - set(seen))))
    assert len(set(dropped)) > 1  # different samples miss out in different epochs


def test_orders_differ_between_epochs_and_reproduce_with_the_seed():
    ds = toy(n=50)
    a, b, c = Loader(ds, 7, seed=5), Loader(ds, 7, seed=5), Loader(ds, 7, seed=6)
    ea = [epoch_ids(a) for _ in range(4)]
    assert [epoch_ids(b) for _ in range(4)] == ea
    assert len({tuple(e) for e in ea}) == 4  # a new order every epoch
    assert epoch_ids(c) != ea[0]
    assert ea[0] != list(range(50))  # actually shuffled
    assert a.epoch == 4 and a.position == 0


def test_order_is_the_documented_spawned_seed_sequence():
    loader = Loader(toy(n=20), 4, seed=123)
    expected = np.random.default_rng(np.random.SeedSequence(123).spawn(3)[2]).permutation(20)
    np.testing.assert_array_equal(loader.order(2), expected)
    for _ in range(2):
        list(loader)
    assert epoch_ids(loader) == expected.tolist()


def test_no_shuffle_and_full_batch_keep_stored_order():
    ds = toy(n=10)
    assert epoch_ids(Loader(ds, 4, shuffle=False)) == list(range(10))
    full = Loader(ds, None, seed=3)
    for _ in range(2):
        (xb, yb), *rest = list(full)
        assert not rest
        np.testing.assert_array_equal(xb, ds.x)
        np.testing.assert_array_equal(yb, ds.y)


def test_batches_are_readonly_contiguous_float32_and_data_untouched():
    ds = toy(n=12)
    before = ds.x.copy()
    for shuffle in (True, False):
        for xb, yb in Loader(ds, 5, shuffle=shuffle, seed=0):
            assert xb.dtype == np.float32 and yb.dtype == np.int64
            assert xb.flags.c_contiguous and not xb.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                xb[0, 0] = -1
    np.testing.assert_array_equal(ds.x, before)
    assert ds.x.flags.writeable  # the data set's own array is not frozen


def test_small_gather_chunks_give_the_same_batches(monkeypatch):
    ds = toy(n=23, d=4)
    reference = [(xb.copy(), yb.copy()) for xb, yb in Loader(ds, 3, seed=9)]
    monkeypatch.setattr(loader_module, "CHUNK_BYTES", 1)  # one batch per gather
    small = list(Loader(ds, 3, seed=9))
    monkeypatch.setattr(loader_module, "CHUNK_BYTES", 3 * 3 * 24)  # two or three batches per gather
    medium = list(Loader(ds, 3, seed=9))
    for other in (small, medium):
        assert len(other) == len(reference)
        for (xa, ya), (xb, yb) in zip(reference, other, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("stop_after", [0, 1, 3, 4])
def test_state_restore_resumes_the_same_sequence(stop_after):
    ds = toy(n=14)
    reference = Loader(ds, 4, seed=11)
    full = [ids(xb) for _ in range(3) for xb, _ in reference]  # 3 epochs x 4 batches

    first = Loader(ds, 4, seed=11)

    def endless(loader):
        while True:
            yield from loader

    taken = []
    it = endless(first)
    for _ in range(4 + stop_after):  # one full epoch, then part of the next
        taken.append(ids(next(it)[0]))
    saved = json.loads(json.dumps(first.state()))  # JSON-safe
    assert saved["epoch"] == (1 if stop_after < 4 else 2) and saved["position"] == stop_after % 4

    resumed = Loader(ds, 4, seed=999)  # the seed comes from the state
    resumed.set_state(saved)
    rest = []
    while len(taken) + len(rest) < len(full):
        rest += [ids(xb) for xb, _ in resumed]
    assert taken + rest == full


def test_state_round_trips_through_npz(tmp_path):
    ds = toy(n=9)
    loader = Loader(ds, 2, seed=4)
    it = iter(loader)
    next(it), next(it)
    np.savez(tmp_path / "s.npz", **loader.state())
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        state = {k: f[k] for k in f.files}
    other = Loader(ds, 2, seed=0)
    other.set_state(state)
    assert other.state() == loader.state()
    assert [ids(x) for x, _ in other] == [ids(x) for x, _ in loader]


def test_break_and_iterate_again_continues_the_epoch():
    ds = toy(n=10)
    loader = Loader(ds, 2, seed=2)
    expected = loader.order(0).tolist()
    seen = []
    for xb, _ in loader:
        seen += ids(xb)
        if len(seen) == 4:
            break
    seen += epoch_ids(loader)
    assert seen == expected and loader.epoch == 1


def test_a_second_iterator_invalidates_the_first():
    loader = Loader(toy(), 2, seed=0)
    first = iter(loader)
    next(first)
    second = iter(loader)
    next(second)
    with pytest.raises(RuntimeError, match="another iteration"):
        next(first)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_samples": 11}, r"the state is for num_samples=11, this loader has num_samples=10"),
        ({"batch_size": 3}, r"the state is for batch_size=3, this loader has batch_size=2"),
        ({"shuffle": 0}, r"the state is for shuffle=0"),
        ({"position": 5}, r"position must be in \[0, 5\) \(batches per epoch\), got 5"),
        ({"epoch": -1}, r"epoch must be a non-negative integer, got -1"),
        ({"seed": 1.5}, r"seed must be a non-negative integer, got 1.5"),
    ],
)
def test_set_state_rejects_foreign_states(change, message):
    loader = Loader(toy(), 2, seed=0)
    with pytest.raises(DataError, match=message):
        loader.set_state({**loader.state(), **change})


def test_set_state_missing_keys():
    with pytest.raises(DataError, match=r"state lacks position, num_samples"):
        Loader(toy(), 2).set_state({"seed": 0, "epoch": 0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"batch_size must be None \(full batch\), 1 \(stochastic\) or an integer k >= 1"),
        ({"batch_size": 2.5}, r"batch_size must be None .* got 2.5"),
        ({"batch_size": True}, r"batch_size must be None .* got True"),
        ({"batch_size": 11, "drop_last": True}, r"batch_size=11 with drop_last=True leaves no batch for 10 samples"),
        ({"batch_size": 2, "seed": -1}, r"seed must be an integer in \[0, 2\*\*63\)"),
        ({"batch_size": 2, "shuffle": "yes"}, r"shuffle must be a bool, got 'yes'"),
    ],
)
def test_loader_argument_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        Loader(toy(), **kwargs)


def test_loader_accepts_a_generator_as_seed():
    a = Loader(toy(), 2, seed=np.random.default_rng(0))
    b = Loader(toy(), 2, seed=np.random.default_rng(0))
    assert a.state()["seed"] == b.state()["seed"]
    assert epoch_ids(a) == epoch_ids(b)


def test_tuples_and_single_arrays():
    x = np.arange(20.0).reshape(10, 2)
    w = np.arange(10) * 10
    t = np.arange(10) * 100
    for xb, wb, tb in Loader((x, w, t), 4, seed=0):
        np.testing.assert_array_equal(xb[:, 0] // 2 * 10, wb)
        np.testing.assert_array_equal(wb * 10, tb)
    single = list(Loader(x, 3, shuffle=False))
    assert isinstance(single[0], np.ndarray) and single[0].shape == (3, 2)
    with pytest.raises(DataError, match=r"same number of samples, got lengths \[10, 9\]"):
        Loader((x, w[:9]))
    with pytest.raises(DataError, match=r"data must be a descend.data.Dataset, a tuple of arrays"):
        Loader({"x": x})


def test_batches_function_one_epoch():
    ds = toy(n=10)
    rng = np.random.default_rng(0)
    e1 = [i for xb, _ in batches(ds, 3, rng=rng) for i in ids(xb)]
    e2 = [i for xb, _ in batches(ds, 3, rng=rng) for i in ids(xb)]
    assert sorted(e1) == sorted(e2) == list(range(10)) and e1 != e2  # same Generator -> new order
    assert e1 == [i for xb, _ in batches(ds, 3, rng=0) for i in ids(xb)]  # int seed == default_rng(seed)
    assert e1 == np.random.default_rng(0).permutation(10).tolist()
    assert [len(y) for _, y in batches(ds, 4, shuffle=False, drop_last=True)] == [4, 4]
    assert [len(y) for _, y in batches(ds)] == [10]  # full batch needs no rng


def test_batches_requires_a_seed_to_shuffle():
    with pytest.raises(DataError, match=r"shuffle=True needs rng"):
        list(batches(toy(), 2))


def test_large_epoch_throughput_is_reasonable():
    # SGD over 20k samples: per-batch overhead must stay a slice, not a gather.
    x = np.zeros((20_000, 40), np.float32)
    loader = Loader((x, np.zeros(20_000, np.int64)), 1, seed=0)
    import time

    t0 = time.perf_counter()
    n = sum(1 for _ in loader)
    elapsed = time.perf_counter() - t0
    assert n == 20_000
    assert elapsed < 2.0, f"{elapsed:.2f}s for one SGD epoch of 20k samples"
