"""The worker process ``vigil convert`` runs each mode's conversion and checks in.

Run as ``python -m converter.worker RESPONSE_FD`` by ``converter/isolation.py``.
Requests arrive as JSON lines on stdin; each answer is one JSON line on the
file descriptor RESPONSE_FD (not stdout: the TFLite converter prints its own
chatter on fd 1). Bulk data (windows, scores, flatbuffers) is exchanged as NPY
and ``.tflite`` files in the job directory. fd 1 and 2 are a log file the
parent reads when this process dies, and faulthandler writes a crash's Python
traceback there, so a segfault in the converter or in the interpreter's
``allocate_tensors`` costs one mode and still says where it happened.

Tasks (``task`` key): ``references`` (Keras scores of the parity and tuning
windows; imports TensorFlow), ``convert`` (one mode to ``MODE.tflite`` plus its
op/IO inspection; TensorFlow), ``check`` (parity of one mode through the
device's ``Scorer``; interpreter only) and ``latency`` (all given modes timed
in interleaved rounds; interpreter only). TensorFlow is imported only by the
tasks that need it, so a check worker starts in a fraction of a second.

``VIGIL_CONVERT_CRASH=MODE[:TASK][,...]`` in the *parent's* environment (sent
with each request, so a pooled worker sees the current value) makes this
process kill itself with SIGSEGV when it starts that task for that mode
(default task: ``convert``); it exists so the tests can prove a crash costs
one mode only.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import VigilInputError

CRASH_ENV = "VIGIL_CONVERT_CRASH"
MODEL_SUFFIX = ".tflite"


def model_file(job: Path, mode: str) -> Path:
    return job / f"{mode}{MODEL_SUFFIX}"


def array_file(job: Path, name: str) -> Path:
    return job / f"{name}.npy"


def _stamp(path: str) -> tuple[Any, ...]:
    """Identifies one version of a run directory (a re-trained run must not reuse a cached model)."""
    out: list[Any] = [path]
    for name in ("run.json", "model.keras"):
        try:
            st = (Path(path) / name).stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [None, None]
    return tuple(out)


class Worker:
    """State kept between requests: the run, its Keras model and the exporter (loaded once per run)."""

    def __init__(self) -> None:
        self._stamp: tuple[Any, ...] | None = None
        self._run: Any = None
        self._model: Any = None
        self._exporter: Any = None

    def run(self, path: str) -> Any:
        from trainer.rundir import read_run

        stamp = _stamp(path)
        if self._run is None or stamp != self._stamp:
            self._run, self._model, self._exporter, self._stamp = read_run(path), None, None, stamp
        return self._run

    def model(self, path: str, verbose: bool = False) -> Any:
        if self._model is None:
            from converter.run_model import load_run_model

            self._model = load_run_model(self.run(path), verbose)
        return self._model

    def exporter(self, path: str, verbose: bool) -> Any:
        if self._exporter is None:
            from converter.export import Exporter

            self._exporter = Exporter(self.model(path, verbose), self.run(path).model_shape)
        self._exporter.verbose = verbose
        return self._exporter

    # ------------------------------------------------------------------ tasks

    def references(self, req: dict[str, Any]) -> dict[str, Any]:
        """Keras scores of every named raw window set (``NAME.npy`` -> ``NAME_keras.npy``)."""
        from trainer.keras_scoring import keras_window_scores

        run, model, job = self.run(req["run"]), self.model(req["run"], bool(req.get("verbose"))), Path(req["job"])
        for name in req["sets"]:
            scaled = run.scaler.transform(np.load(array_file(job, name)))
            scores, _ = keras_window_scores(model, scaled, run.score_function, run.score_weights)
            np.save(array_file(job, f"{name}_keras"), np.asarray(scores, np.float64))
        return {}

    def convert(self, req: dict[str, Any]) -> dict[str, Any]:
        from converter.ops import inspect_model
        from converter.quantize import INT8_WEIGHTS, needs_calibration

        mode, job = req["mode"], Path(req["job"])
        exporter = self.exporter(req["run"], bool(req.get("verbose")))
        calibration = np.load(array_file(job, "calibration")) if needs_calibration(mode) else None
        planner = self._planner(req["run"], job) if mode == INT8_WEIGHTS and req.get("plan_weights") else None
        export = exporter.export(mode, calibration, planner)
        model_file(job, mode).write_bytes(export.model_bytes)
        return {"seconds": export.seconds, "notes": export.notes, "info": inspect_model(export.model_bytes).to_dict()}

    def check(self, req: dict[str, Any]) -> dict[str, Any]:
        from converter.parity import Reference, check_parity
        from converter.quantize import ParityLimits
        from converter.windows import WindowSet
        from edge_agent.runtime import Scorer

        self.run(req["run"])  # loads (and caches) the run the bundle below is built from
        job, mode = Path(req["job"]), req["mode"]
        scorer = Scorer(self._bundle(req, mode))
        references = [
            Reference(WindowSet(name, np.load(array_file(job, name))), np.load(array_file(job, f"{name}_keras")))
            for name in req["sets"]
        ]
        limits = ParityLimits(**req["limits"])
        return check_parity(scorer, references, float(req["threshold"]), limits, mode).to_dict()

    def verify(self, req: dict[str, Any]) -> dict[str, Any]:
        """Parity of an existing bundle file (``vigil verify``) against Keras scores saved by the parent."""
        from converter.parity import Reference, check_parity
        from converter.quantize import ParityLimits
        from converter.windows import WindowSet
        from edge_agent.bundle import load_bundle
        from edge_agent.runtime import Scorer

        job, name = Path(req["job"]), str(req["set"])
        bundle = load_bundle(req["bundle"])
        reference = Reference(WindowSet(str(req["set_title"]), np.load(array_file(job, name))),
                              np.load(array_file(job, f"{name}_keras")))
        limits = ParityLimits(**req["limits"])
        return check_parity(Scorer(bundle), [reference], bundle.threshold, limits, bundle.quantization).to_dict()

    def latency(self, req: dict[str, Any]) -> dict[str, Any]:
        from converter.latency import measure_latency
        from edge_agent.runtime import Scorer

        job = Path(req["job"])
        scorers = {mode: Scorer(self._bundle(req, mode)) for mode in req["modes"]}
        windows = np.load(array_file(job, req["windows"]))
        timing = measure_latency(scorers, windows, rounds=int(req["rounds"]))
        return {mode: t.to_dict() for mode, t in timing.items()}

    def _bundle(self, req: dict[str, Any], mode: str) -> Any:
        from converter.manifest import bundle_for
        from converter.ops import ModelInfo

        info = ModelInfo.from_dict(req["info"][mode])
        data = model_file(Path(req["job"]), mode).read_bytes()
        return bundle_for(self.run(req["run"]), mode, data, info, req.get("notes", {}).get(mode, []))

    def _planner(self, run_path: str, job: Path) -> Any:
        """int8-weights: per-matrix storage from sensitivities on training windows (``mixed.py``)."""
        from converter.manifest import bundle_for
        from converter.mixed import plan_weights
        from converter.ops import inspect_model
        from converter.quantize import FLOAT32
        from edge_agent.runtime import Scorer

        run = self.run(run_path)
        tuning = np.load(array_file(job, "tuning"))
        reference = np.load(array_file(job, "tuning_keras"))

        def make_scorer(model_bytes: bytes) -> Scorer:
            return Scorer(bundle_for(run, FLOAT32, model_bytes, inspect_model(model_bytes), []))

        def planner(float32_bytes: bytes) -> tuple[bytes, list[str]]:
            mixed = plan_weights(float32_bytes, make_scorer, tuning, reference)
            return mixed.result.model_bytes, mixed.notes()

        return planner


def crash_requested(mode: str | None, task: str, setting: str | None = None) -> bool:
    """Whether ``VIGIL_CONVERT_CRASH`` asks this (mode, task) to crash (see the module docstring)."""
    setting = os.environ.get(CRASH_ENV, "") if setting is None else setting
    for item in filter(None, (part.strip() for part in setting.split(","))):
        want_mode, _, want_task = item.partition(":")
        if want_mode == mode and (want_task or "convert") == task:
            return True
    return False


def answer(worker: Worker, req: dict[str, Any]) -> dict[str, Any]:
    task = req.get("task")
    handler = {"references": worker.references, "convert": worker.convert, "check": worker.check,
               "latency": worker.latency, "verify": worker.verify}.get(str(task))
    if handler is None:
        return {"ok": False, "error": f"unknown task {task!r}"}
    if crash_requested(req.get("mode"), str(task), req.get("crash")):
        sys.stderr.write(f"{CRASH_ENV}: crashing on purpose ({req.get('mode')}:{task})\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    try:
        return {"ok": True, "result": handler(req)}
    except VigilInputError as exc:
        return {"ok": False, "error": exc.detail, "input_error": True, "where": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this mode's one-line reason
        traceback.print_exc()  # the full story goes to the log
        text = str(exc).strip().splitlines()
        return {"ok": False, "error": f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")}


def main(argv: list[str]) -> int:
    response = os.fdopen(int(argv[1]), "w", buffering=1)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = answer(worker, json.loads(line))
        response.write(json.dumps(reply) + "\n")
        response.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
