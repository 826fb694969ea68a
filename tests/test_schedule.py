"""A warm-up at least as long as the run is fitted to 10% of it, with a warning."""

from __future__ import annotations

import pytest

from albertctl.core.config import TrainConfig
from albertctl.training.loop import fit_warmup
from albertctl.training.optim import learning_rate_at


@pytest.mark.parametrize(
    ("warmup", "steps", "fitted"), [(1000, 50, 5), (50, 50, 5), (200, 3, 0), (49, 50, 49), (0, 10, 0)]
)
def test_fit_warmup(warmup, steps, fitted):
    t = TrainConfig(warmup_steps=warmup, train_steps=steps)
    got, note = fit_warmup(t)
    assert got.warmup_steps == fitted
    assert (note is None) == (warmup < steps)
    if note:
        assert note.startswith(f"warm-up of {warmup} steps is not shorter than the run ({steps} steps)")
        assert f"warming up over {fitted} steps (10% of the run) instead" in note
    # the fitted schedule reaches the peak and decays to zero by the end
    peak = max(learning_rate_at(s, 1.0, got.warmup_steps, steps) for s in range(steps))
    assert peak == pytest.approx(1.0, abs=1.0 / steps)
