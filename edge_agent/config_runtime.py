"""What only the device can tell about a config: the interpreter exists and loads the model.

``vigil agent check-config`` calls :func:`check_runtime` after the config and
bundle checks, so a missing interpreter or a model the runtime refuses (an op
this runtime version lacks, a damaged flatbuffer) is one line at install time,
not a crash at ``agent run``. The missing-interpreter line names the package
that fits this machine and Python (:func:`interpreter_advice`).
"""

from __future__ import annotations

import platform
import sys

from edge_agent.bundle import Bundle
from edge_agent.errors import VigilInputError

_EDGE = "pip install 'vigil-edge[edge]'"


def interpreter_advice(machine: str, python: tuple[int, int]) -> str:
    """Which TFLite interpreter package fits ``machine`` (``platform.machine()``) and ``python``."""
    version = f"{python[0]}.{python[1]}"
    arch = machine.lower()
    if arch in ("x86_64", "amd64", "aarch64", "arm64"):
        if python < (3, 10):
            return f"ai-edge-litert needs Python 3.10 or newer on {machine} (this is Python {version})"
        return f"install ai-edge-litert for {machine} / Python {version}: {_EDGE}"
    if arch.startswith("armv7") or arch in ("armv6l", "armhf"):
        if python >= (3, 12):
            return (f"no TFLite interpreter is published for {machine} with Python {version}: use Python 3.11 or "
                    "older (tflite-runtime with numpy<2) or a 64-bit OS (aarch64, ai-edge-litert)")
        return f"install tflite-runtime with numpy<2 for {machine} / Python {version}: {_EDGE} 'numpy<2'"
    return (f"no TFLite interpreter package is known for {machine}: ai-edge-litert covers x86_64 and aarch64, "
            "tflite-runtime armv7l with Python <= 3.11")


def missing_interpreter_message() -> str:
    return "no TFLite interpreter (ai_edge_litert or tflite_runtime) can be imported; " + interpreter_advice(
        platform.machine(), (sys.version_info[0], sys.version_info[1]))


def check_runtime(bundle: Bundle, num_threads: int, *, config_file: str) -> str:
    """Load the bundle's model in this machine's interpreter; the backend name, or a one-line error."""
    from edge_agent.runtime import Scorer, load_interpreter_class

    try:
        load_interpreter_class()
    except VigilInputError:
        raise VigilInputError(missing_interpreter_message(), file=config_file) from None
    try:
        scorer = Scorer(bundle, num_threads=num_threads)
    except VigilInputError as exc:
        detail = " ".join(exc.detail.split())  # the runtime's own message may span lines
        raise VigilInputError(f"{bundle.path}: {detail}", file=config_file, key="bundle.path") from None
    return str(scorer.backend)
