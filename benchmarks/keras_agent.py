"""Reference process for the footprint benchmark: the agent's job done with the Keras model.

What a user would run without vigil's edge runtime: TensorFlow + the trained
``.keras`` model, the same synthetic 3-axis source and window buffer, scoring
every window with ``model(window[None])`` (the faster of predict/direct call,
see the latency benchmark) and comparing with the run's threshold. Prints
``ready`` when it starts reading, ``first window`` after the first score and
``stopped: N samples, W windows`` on SIGTERM, like the agent's log.

Usage: ``python -m benchmarks.keras_agent RUN_DIR realtime|fast``
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np


def main(run_dir: str, pace: str) -> None:
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
        samples += len(block)
        for row in block.values:
            window = buffer.push(row)
            if window is None:
                continue
            scaled = scaler.transform(window).astype(np.float32)
            recon = np.asarray(model(scaled[None], training=False))
            score = float(score_windows(scaled[None], recon, run.score_function, run.score_weights)[0][0])
            alarms += score > threshold
            windows += 1
            if windows == 1:
                print("first window", flush=True)
    print(f"stopped: {samples} samples, {windows} windows scored, {alarms} anomalous", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
