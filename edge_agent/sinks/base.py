"""The sink contract: the one seam between the agent loop and the outside.

``publish_alert`` must not return before the alert is durable (spooled to disk
or written to the file): that is what makes "no alert lost" hold across a
``kill -9``. Payloads are plain JSON-able dicts built by
:mod:`edge_agent.payload`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class AlertSink(Protocol):
    def start(self) -> None: ...

    def publish_alert(self, payload: dict[str, Any]) -> None: ...

    def publish_health(self, payload: dict[str, Any]) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...
