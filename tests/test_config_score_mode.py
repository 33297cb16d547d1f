"""``[alerts] score`` picks window-mean or per-row decisions over the bundle's own choice."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import VigilInputError
from edge_agent.pipeline import PipelineSettings


def _config(tmp_path: Path, bundle: Path, alerts: str) -> Path:
    (tmp_path / "data.csv").write_text("f0,f1,f2\n" + "0.1,0.2,0.3\n" * 50, encoding="utf-8")
    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        [bundle]
        path = "{bundle}"
        [source]
        kind = "replay"
        path = "data.csv"
        pace = "fast"
        [alerts]
        """) + alerts, encoding="utf-8")
    return path


@pytest.mark.slow  # uses the converted tiny bundle
def test_score_mode_overrides_the_bundle_and_a_bad_value_is_one_line(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    config = load_config(_config(tmp_path, tiny_bundle_3f, ""))
    assert config.bundle is not None
    own = ((config.bundle.detection or {}).get("score") or {}).get("mode", "window")
    other = "window" if own == "row" else "row"
    assert PipelineSettings.from_config(config, config.bundle).score is None  # unset: the bundle's section
    same = load_config(_config(tmp_path, tiny_bundle_3f, f'score = "{own}"\n'))
    assert PipelineSettings.from_config(same, config.bundle).score is None
    changed = load_config(_config(tmp_path, tiny_bundle_3f, f'score = "{other}"\n'))
    score = PipelineSettings.from_config(changed, config.bundle).score
    assert score is not None and score.mode == other
    with pytest.raises(VigilInputError) as bad:
        load_config(_config(tmp_path, tiny_bundle_3f, 'score = "peak"\n'))
    assert "alerts.score" in str(bad.value) and "\n" not in str(bad.value)
