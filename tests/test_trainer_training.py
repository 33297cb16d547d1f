"""The training loop's parts: deviation scale, epoch length, progress heartbeat, scale survives re-batching."""

from __future__ import annotations

import time

import numpy as np
import pytest

from trainer.progress import Heartbeat
from trainer.training import MIN_SHAPE_SCALE, FitSettings, shape_scale, steps_per_epoch


def test_shape_scale_is_the_rms_around_each_windows_mean() -> None:
    rng = np.random.default_rng(0)
    level = rng.uniform(-5, 5, size=(40, 1, 1))  # each window at its own level: the level must not count
    windows = np.concatenate([level + 0.1 * np.sin(np.linspace(0, 6.28, 32))[None, :, None] * np.ones((40, 32, 1)),
                              np.full((40, 32, 1), 3.0)], axis=2)  # second feature constant
    scale = shape_scale(windows)
    assert scale[0] == pytest.approx(0.1 / np.sqrt(2), rel=0.05)
    assert scale[1] == MIN_SHAPE_SCALE  # floored, not zero


@pytest.mark.parametrize("n_windows, per_epoch, batch, expected", [
    (5000, 2048, 64, 32),  # a long series is seen in slices of 2048 windows
    (500, 2048, 64, 8),  # a short one once per epoch, as before
    (500, None, 64, 8),
    (10, 2048, 64, 1),
])
def test_steps_per_epoch(n_windows: int, per_epoch: int | None, batch: int, expected: int) -> None:
    settings = FitSettings(batch_size=batch, windows_per_epoch=per_epoch)
    assert steps_per_epoch(settings, n_windows) == expected


def test_heartbeat_prints_until_stopped_at_doubling_gaps() -> None:
    lines: list[str] = []
    beat = Heartbeat(lines.append, "tracing", every=0.05)
    time.sleep(0.5)  # lines at ~0.05, 0.15, 0.35 s
    beat.stop()
    count = len(lines)
    time.sleep(0.2)
    assert 2 <= count <= 4 and len(lines) == count
    assert all(line.startswith("  ... tracing (") for line in lines)


@pytest.mark.slow
def test_fit_prints_before_the_graph_build_and_the_scale_survives_rebatching() -> None:
    from trainer.keras_backend import set_seed
    from trainer.model import shape_scale_of, with_batch_size
    from trainer.training import fit_autoencoder

    set_seed(0)
    t = np.arange(400, dtype=np.float64)
    rows = np.column_stack([0.5 + 0.02 * np.sin(2 * np.pi * t / 12), 0.3 + 0.01 * np.cos(2 * np.pi * t / 8)])
    windows = np.lib.stride_tricks.sliding_window_view(rows, (16, 2))[:, 0].astype(np.float32)
    fit, held = np.ascontiguousarray(windows[:300]), np.ascontiguousarray(windows[300:])
    lines: list[str] = []
    model, history = fit_autoencoder(FitSettings(units=(8, 4), epochs=2, batch_size=32, patience=0), fit, held,
                                     lines.append)
    assert lines[0] == "building model ..."
    assert lines[1].startswith("starting epoch 1 of at most 2 (model built in")
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert len(history["val_loss"]) == 2 and len(history["lr"]) == 2  # the plateau schedule logs its rate
    np.testing.assert_allclose(shape_scale_of(model), shape_scale(fit), rtol=1e-6)
    fixed = with_batch_size(model, 1)
    assert shape_scale_of(fixed) == shape_scale_of(model)
    np.testing.assert_allclose(fixed.predict(held[:1], verbose=0), model.predict(held[:1], verbose=0), atol=1e-6)
