"""Deployed bundles and the rollout state on disk, beside the spool.

Layout (``<spool dir>/rollout/``)::

    state.json            which bundle is active, the one before it, a running probation,
                          the remote [alerts] policy, the last commands handled
    bundles/<sha16>.vigil the deployed bundles (at most: active, previous, on probation)

Every file is written to a temporary name, flushed to disk (``fsync``) and
renamed over the old one (``os.replace`` is atomic), then the directory is
synced; a power cut leaves the old file or the new one, never half of one.

Why a device never ends without a working bundle: the configured bundle
(``[bundle] path``) is never touched, a deployed bundle is written and synced
before the state names it, and the state names a bundle on probation
*separately* from the active one. A start that finds a probation in the state
(the process died during it, maybe because of the new bundle) goes back to the
active bundle and reports ``rolled_back``. An active or previous bundle that no
longer loads is skipped, down to the configured one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from edge_agent.rollout.protocol import STATE_FORMAT

log = logging.getLogger("vigil.rollout")

ROLLOUT_DIR = "rollout"
STATE_FILE = "state.json"
BUNDLES_DIR = "bundles"
HANDLED_KEPT = 32  # command ids remembered, so a QoS 1 duplicate is not acted on twice


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RolloutStore:
    """``state.json`` and the bundle files; every change is saved before it takes effect."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.bundles = self.folder / BUNDLES_DIR
        self.path = self.folder / STATE_FILE
        self.bundles.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = self._read()

    # -- reading ------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"format": STATE_FORMAT, "active": None, "previous": None, "probation": None,
                                 "policy": {}, "handled": {}}
        if not self.path.exists():
            return empty
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            log.error("rollout: cannot read %s (%s); starting from the configured bundle", self.path, exc)
            return empty
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            log.error("rollout: %s is not a %s file; starting from the configured bundle", self.path, STATE_FORMAT)
            return empty
        for key in ("policy", "handled"):
            if not isinstance(data.get(key), dict):
                data[key] = {}
        return {**empty, **data}

    def entry(self, name: str) -> dict[str, Any] | None:
        """``active`` / ``previous`` / ``probation``: ``{path, sha256, model_id, id}`` or None."""
        value = self.state.get(name)
        return value if isinstance(value, dict) and isinstance(value.get("path"), str) else None

    def bundle_path(self, entry: dict[str, Any]) -> Path:
        path = Path(entry["path"])
        return path if path.is_absolute() else self.folder / path

    @property
    def policy(self) -> dict[str, Any]:
        return dict(self.state["policy"])

    def handled(self, command_id: str) -> dict[str, Any] | None:
        """The final reply of a command handled before (a duplicate), or None."""
        value = self.state["handled"].get(command_id)
        return value if isinstance(value, dict) else None

    # -- writing ------------------------------------------------------------------

    def stage(self, data: bytes, sha256: str) -> Path:
        """Write a verified bundle under ``bundles/`` (atomically); its path."""
        path = self.bundles / f"{sha256[:16]}.vigil"
        atomic_write(path, data)
        return path

    def entry_for(self, path: Path, sha256: str, model_id: str, command_id: str | None) -> dict[str, Any]:
        try:
            stored = str(path.relative_to(self.folder))
        except ValueError:
            stored = str(path)  # the configured bundle, outside the store
        return {"path": stored, "sha256": sha256, "model_id": model_id, "id": command_id}

    def save(self, **changes: Any) -> None:
        """Apply ``changes`` to the state and write it (atomically) before returning."""
        self.state.update(changes)
        data = (json.dumps(self.state, indent=2, sort_keys=True) + "\n").encode()
        atomic_write(self.path, data)

    def remember(self, command_id: str, final_reply: dict[str, Any]) -> dict[str, Any]:
        """The ``handled`` table with this command's final reply added (oldest dropped)."""
        handled = dict(self.state["handled"])
        handled.pop(command_id, None)
        handled[command_id] = {k: final_reply[k] for k in ("state", "reason", "model_id") if k in final_reply}
        while len(handled) > HANDLED_KEPT:
            handled.pop(next(iter(handled)))
        return handled

    def prune(self) -> None:
        """Delete deployed bundle files the state no longer names (best effort)."""
        keep = {self.bundle_path(e).name for e in (self.entry(n) for n in ("active", "previous", "probation"))
                if e is not None}
        for path in self.bundles.glob("*.vigil"):
            if path.name not in keep:
                try:
                    path.unlink()
                except OSError as exc:
                    log.warning("rollout: cannot delete %s: %s", path, exc)
