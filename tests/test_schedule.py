"""The learning-rate schedule: warm-up, constant or cosine, and the per-epoch decay."""

import math

import pytest

from charrnn.config import TrainConfig
from charrnn.schedule import Schedule


def test_constant_with_warmup_and_decay():
    s = Schedule(lr=0.01, warmup=4, lr_decay=0.5, total=100)
    assert [s.rate(k, 0) for k in range(5)] == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01])
    assert s.rate(50, 2) == pytest.approx(0.0025)  # two epochs of decay


def test_cosine_runs_from_lr_to_min_lr_over_the_plan_after_the_warmup():
    s = Schedule(lr=1.0, kind="cosine", warmup=10, min_lr=0.1, total=110)
    assert s.rate(9, 0) == pytest.approx(1.0)  # the last warm-up step reaches lr
    assert s.rate(10, 0) == pytest.approx(1.0)
    assert s.rate(60, 0) == pytest.approx(0.55)  # half-way: the midpoint
    assert s.rate(110, 0) == pytest.approx(0.1) and s.rate(500, 0) == pytest.approx(0.1)
    rates = [s.rate(k, 0) for k in range(10, 111)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_a_plan_that_starts_later_is_shifted():
    """Fine-tuning on another corpus starts a new plan at its first step."""
    a = Schedule(lr=1.0, kind="cosine", warmup=3, min_lr=0.0, start=0, total=50)
    b = Schedule(lr=1.0, kind="cosine", warmup=3, min_lr=0.0, start=20, total=70)
    assert [a.rate(k, 0) for k in range(50)] == [b.rate(k + 20, 0) for k in range(50)]


def test_time_bound_cosine_follows_the_fraction_of_the_time_used():
    s = Schedule(lr=1.0, kind="cosine", min_lr=0.0, total=None, time_limit=200.0)
    assert s.rate(5, 0, elapsed=0.0) == pytest.approx(1.0)
    assert s.rate(5, 0, elapsed=100.0) == pytest.approx(0.5)
    assert s.rate(5, 0, elapsed=250.0) == pytest.approx(0.0, abs=1e-12)


def test_config_defaults():
    cfg = TrainConfig(lr_schedule="cosine", lr=0.004)
    s = Schedule.of(cfg, 0, 1000)
    assert s.min_lr == pytest.approx(0.0004)  # a tenth of the learning rate
    assert s.warmup == 100 and s.rate(0, 0) == pytest.approx(0.004 / 100)  # then 100 steps of warm-up
    assert s.rate(999, 0) == pytest.approx(0.0004 + 0.0036 * 0.5 * (1 + math.cos(math.pi * 899 / 900)))
