"""The one streaming path from samples to alerts, shared by the agent, ``vigil score`` and ``vigil evaluate``.

::

    SampleBlock -> SampleQuality (skip / hold / restart, rows kept) -> WindowBuffer
        -> Scorer (TFLite) -> EWMA smoothing -> threshold decision (static floor,
        dynamic threshold) -> EventDetector (k of n / m to close) -> alert payloads
    SampleBlock -> sensor-health monitor (flatline, clipping, ...) -> sensor-fault payloads

:class:`StreamingPipeline` does no I/O: the agent (:mod:`edge_agent.service`)
feeds it blocks from a sensor and hands the payloads to its sinks;
:func:`replay_file` feeds it a file, unpaced, for ``vigil score`` and
``vigil evaluate``. Same object, same numbers, same events.
"""

from edge_agent.pipeline.replay import ReplayResult, replay_file
from edge_agent.pipeline.settings import PipelineSettings
from edge_agent.pipeline.stream import StreamingPipeline, WindowLog

__all__ = ["PipelineSettings", "ReplayResult", "StreamingPipeline", "WindowLog", "replay_file"]
