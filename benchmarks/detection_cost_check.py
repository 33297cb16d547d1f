"""Check: the detection speedups change no published event (issue 10's cost target must not move results).

Replays real series (the quality benchmark's cached bundles in benchmarks/.work/quality/<series>/, read
only) and the demo signal with faults, NaN, invalid rows and gaps through ``edge_agent.pipeline``, in both
score modes, as ``vigil score`` does (4096-row blocks, batched scorer) and as the agent does (1- to
100-sample reads, one window at a time), and dumps every payload (all fields but the random event id),
every logged window decision and the counters. Scores come from each bundle's TFLite Scorer, cached per
window content (a window's score depends only on its values).

    git archive <before> edge_agent | tar -x -C /tmp/before        # the code before the change
    EQUIV_BASE=/tmp/before .venv/bin/python -m benchmarks.detection_cost_check dump before.json
    .venv/bin/python -m benchmarks.detection_cost_check dump after.json
    .venv/bin/python -m benchmarks.detection_cost_check compare before.json after.json   # exit 1 on a difference
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if os.environ.get("EQUIV_BASE"):  # import edge_agent from that copy, not the editable install
    sys.meta_path[:] = [f for f in sys.meta_path
                        if "editable" not in str(getattr(f, "__module__", "")) and "editable" not in repr(f)]
    sys.path.insert(0, os.environ["EQUIV_BASE"])

import numpy as np  # noqa: E402

import edge_agent.sources.replay as _replay_module  # noqa: E402
from benchmarks.datasets import all_series  # noqa: E402
from edge_agent.bundle import load_bundle  # noqa: E402
from edge_agent.detection.settings import ScoreSettings  # noqa: E402
from edge_agent.pipeline import PipelineSettings, StreamingPipeline  # noqa: E402
from edge_agent.pipeline.replay import replay_file  # noqa: E402
from edge_agent.runtime import Scorer  # noqa: E402
from edge_agent.sources.base import SampleBlock  # noqa: E402
from edge_agent.sources.synthetic import generate_vibration  # noqa: E402


class _FixedClock:
    """Files without timestamps get times from the wall clock at open: fixed here, so runs compare."""

    time = staticmethod(lambda: 1.8e9)
    monotonic = staticmethod(__import__("time").monotonic)
    sleep = staticmethod(__import__("time").sleep)


_replay_module.time = _FixedClock  # type: ignore[assignment]


class CachedScorer:
    """The bundle's Scorer, its result cached per window content."""

    def __init__(self, bundle: Any, cache: dict[bytes, Any] | None = None) -> None:
        self.scorer = Scorer(bundle)
        self.cache: dict[bytes, Any] = {} if cache is None else cache

    def score(self, window: np.ndarray) -> Any:
        key = window.tobytes()
        result = self.cache.get(key)
        if result is None:
            result = self.cache[key] = self.scorer.score(np.array(window))
        return result


class CachedBatchScorer(CachedScorer):
    """With ``score_many``: the pipeline's batched path (``vigil score``)."""

    def score_many(self, windows: np.ndarray) -> list[Any]:
        return [self.score(w) for w in windows]


SERIES = ("machine_temperature_system_failure", "TEK16", "chfdb_chf01_275", "nyc_taxi", "ann_gun_CentroidA")
DEMO_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default", {}), ("hold", {"quality_policy": "hold"}), ("range", {"valid_range": (-1.5, 1.5)}),
    ("static", {"dynamic_threshold": False}))


def _payload(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k != "event_id"}  # a random uuid


def _log(log: Any) -> dict[str, Any]:
    return {"rows": log.rows, "times": log.times, "raw": log.raw_scores, "scores": log.scores,
            "thr": log.thresholds, "anom": log.anomalous, "fe": [e.tolist() for e in log.feature_errors],
            "resets": log.reset_rows}


def _case(payloads: list[dict[str, Any]], log: Any, counters: dict[str, Any]) -> dict[str, Any]:
    counters = dict(counters)
    counters.pop("scoring_latency_ms", None)  # timings
    return {"payloads": [_payload(p) for p in payloads], "log": _log(log), "counters": counters}


def _stream(bundle: Any, scorer: Any, values: np.ndarray, stamps: np.ndarray, block: int, settings: Any,
            rate: float | None, damage: bool = False) -> dict[str, Any]:
    """Agent-sized reads; ``damage``: NaN samples, invalid rows, lost samples and inf values now and then."""
    pipeline = StreamingPipeline(bundle, settings, scorer=scorer, rate_hz=rate, log_windows=True)
    out: list[dict[str, Any]] = []
    rng = np.random.default_rng(5)
    for i in range(0, len(values), block):
        chunk, times = values[i:i + block].copy(), stamps[i:i + block]
        valid, gap = None, 0
        if damage:
            u = rng.random()
            if u < 0.03:
                chunk[rng.integers(len(chunk))] = np.nan
            elif u < 0.05:
                valid = rng.random(len(chunk)) > 0.3
            elif u < 0.06:
                gap = int(rng.integers(1, 40))
            elif u < 0.07 and len(chunk) > 3:
                chunk[1:3, 0] = np.inf
        out += pipeline.process(SampleBlock(chunk, times, valid, gap))
    out += pipeline.finish()
    assert pipeline.log is not None
    return _case(out, pipeline.log, pipeline.counters())


def _real_series(res: dict[str, Any]) -> None:
    from edge_agent.sources.replay import ReplaySource

    for series in all_series():
        if series.name not in SERIES:
            continue
        bundle = load_bundle(f"benchmarks/.work/quality/{series.name}/auto.vigil")
        columns = bundle.input_features if series.columns is None else series.columns
        batched = CachedBatchScorer(bundle)
        single = CachedScorer(bundle, batched.cache)
        for mode in ("window", "row"):
            settings = PipelineSettings.for_bundle(bundle, score=ScoreSettings(mode))
            r = replay_file(bundle, series.path, settings=settings, rows=series.test_rows, columns=columns,
                            scorer=batched)
            res[f"{series.name}/{mode}/replay"] = _case(r.payloads, r.windows, r.counters)
            source = ReplaySource(series.path, columns=columns, rows=series.test_rows, pace="fast",
                                  block_rows=10**7)
            source.open()
            whole = source.read()
            assert whole is not None
            for block in (7, 25):
                res[f"{series.name}/{mode}/block{block}"] = _stream(
                    bundle, single, np.asarray(whole.values), np.asarray(whole.timestamps), block, settings,
                    source.sampling_rate_hz)
        print(series.name, "done", flush=True)


def _demo(res: dict[str, Any]) -> None:
    bundle = load_bundle("benchmarks/.work/row-score/demo.vigil")
    rate = bundle.sampling_rate_hz or 250.0
    values, _ = generate_vibration(int(120 * rate), rate_hz=rate, seed=3, faults=True)
    signal = np.asarray(values, np.float32)
    stamps = 1.7e9 + np.arange(len(signal)) / rate
    scorer = CachedScorer(bundle)
    for mode in ("window", "row"):
        for name, extra in DEMO_VARIANTS:
            settings = PipelineSettings.for_bundle(bundle, score=ScoreSettings(mode), **extra)
            for block in (1, 10, 25, 100, 4096):
                if block == 1 and name != "default":
                    continue
                for damage in (False, True):
                    res[f"demo/{mode}/{name}/block{block}/damage{damage}"] = _stream(
                        bundle, scorer, signal, stamps, block, settings, rate, damage)
        print("demo", mode, "done", flush=True)


def main_dump(path: str) -> None:
    res: dict[str, Any] = {}
    _real_series(res)
    _demo(res)
    Path(path).write_text(json.dumps(res))
    print(len(res), "cases;", sum(len(v["payloads"]) for v in res.values()), "payloads")


def main_compare(a: str, b: str) -> None:
    # json turns NaN into float("nan") objects that never compare equal: compare the texts of each part
    before, after = json.loads(Path(a).read_text()), json.loads(Path(b).read_text())
    if before.keys() != after.keys():
        sys.exit(f"different cases: {sorted(set(before) ^ set(after))}")
    bad = 0
    for key in before:
        for part in ("payloads", "log", "counters"):
            if json.dumps(before[key][part]) != json.dumps(after[key][part]):
                bad += 1
                print("DIFF", key, part)
    print(f"{len(before)} cases, {sum(len(v['payloads']) for v in before.values())} payloads, "
          f"{sum(len(v['log']['rows']) for v in before.values())} window decisions; differing parts: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        main_dump(sys.argv[2])
    else:
        main_compare(sys.argv[2], sys.argv[3])
