"""Issue 2's acceptance check on real data: Keogh's ECG discord chfdb_chf01_275, default settings.

Train on rows 0:1833, evaluate rows 1833:3674; the labeled discord (labels.json,
exclusive bounds (2330, 2600)) must be found with at most one false event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shared_data_file


@pytest.mark.slow
def test_default_training_finds_the_ecg_discord_with_at_most_one_false_event(tmp_path: Path) -> None:
    from trainer.evaluate import run_evaluate
    from trainer.fit import TrainConfig, run_train

    ecg = shared_data_file("discords", "ecg", "chfdb_chf01_275.txt")
    labels = shared_data_file("discords", "labels.json")
    run_train(TrainConfig(data=ecg, out=tmp_path / "run", columns=["1", "2"], train_rows=(0, 1833),
                          echo=lambda _line: None))
    metrics = run_evaluate(tmp_path / "run", ecg, labels, rows=(1833, 3674), out=tmp_path / "eval")

    assert metrics["label_ranges"] == [[2331, 2599]]  # (2330, 2600) exclusive -> inclusive rows
    event = metrics["models"]["lstm_autoencoder"]["event"]
    assert event["recall"] == 1.0
    assert event["fp"] <= 1
    report = (tmp_path / "eval" / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 7  # every plot, loss curve included
