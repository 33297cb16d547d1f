"""Reference process for the footprint benchmark: the agent's job done with the Keras model.

What a user would run without vigil's edge runtime: TensorFlow + the trained
``.keras`` model, the same synthetic 3-axis source and window buffer, scoring
every window with ``model.predict(window[None])`` (or the direct call
``model(window[None])`` with ``call``; in tf_keras the direct call runs the
LSTM eagerly, step by step, and is the slower of the two, see the latency
benchmark) and comparing with the run's threshold. Prints
``ready`` when it starts reading, ``first window`` after the first score and
``stopped: N samples, W windows`` on SIGTERM, like the agent's log.

Usage: ``python -m benchmarks.keras_agent RUN_DIR realtime|fast [predict|call]``
"""

from __future__ import annotations

import signal
import sys

import numpy as np


def main(run_dir: str, pace: str, how: str = "predict") -> None:
    from edge_agent.core import WindowBuffer, score_windows
    from edge_agent.sources.synthetic import SyntheticSource
    from trainer.rundir import read_run

    run = read_run(run_dir)
    model = run.load_model()
    scaler, spec, threshold = run.scaler, run.spec, run.threshold
    source = SyntheticSource(rate_hz=1000.0, seed=3, pace=pace, block_rows=spec.window)
    buffer = WindowBuffer(spec, len(run.features))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    source.open()
    print("ready", flush=True)
    samples = windows = alarms = 0
    while not stop:
        block = source.read(0.1)
        if block is None:
            break
        for row in block.values:
            if stop:
                break  # a backlog must not delay the shutdown
            samples += 1
            window = buffer.push(row)
            if window is None:
                continue
            scaled = scaler.transform(window).astype(np.float32)
            if how == "call":
                recon = np.asarray(model(scaled[None], training=False))
            else:
                recon = model.predict(scaled[None], verbose=0)
            score = float(score_windows(scaled[None], recon, run.score_function, run.score_weights)[0][0])
            alarms += score > threshold
            windows += 1
            if windows == 1:
                print("first window", flush=True)
    print(f"stopped: {samples} samples, {windows} windows scored, {alarms} anomalous", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
