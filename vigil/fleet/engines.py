"""Where the assets run: a local pool of processes (default) or a Ray cluster (``--ray ADDRESS|auto``).

Both start one fresh process per asset (the local pool spawns one; Ray's task runs with
``max_calls=1``, so its worker exits after it): an asset that crashes or leaks costs that asset
only, and TensorFlow's per-process state never carries over. Each asset's process gets
``threads`` TensorFlow threads; the pool runs ``workers`` at a time, Ray as many as the cluster has
CPUs for (each task asks for ``threads`` CPUs).

With Ray on several machines the data and the output folder must be at the same path on every
node (a shared file system), and the nodes need this project installed (``pip install
'vigil-edge[train,fleet]'``), as on the machine that runs ``vigil fleet train``.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError
from vigil.fleet.job import FORMAT, RESULT_NAME, asset_dir, read_result, run_asset, write_result
from vigil.fleet.spec import Asset

Done = Callable[[dict[str, Any]], None]


def lost_result(asset: Asset, why: str, started: float) -> dict[str, Any]:
    """The result of an asset whose process died before it could write one."""
    return {"format": FORMAT, "asset": asset.name, "fingerprint": asset.fingerprint(), "data": str(asset.data),
            "status": "failed", "stage": "process", "error": why, "times_s": {},
            "time_s": round(time.time() - started, 3)}


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _child(asset: Asset, out: Path, threads: int) -> None:
    run_asset(asset, out, threads)


def run_local(assets: list[Asset], out: Path, *, workers: int, threads: int, done: Done) -> None:
    """At most ``workers`` assets at a time, each in a spawned process (TensorFlow is not fork-safe)."""
    ctx = multiprocessing.get_context("spawn")
    pending = list(assets)
    running: dict[Any, tuple[Any, Asset, float]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                asset = pending.pop(0)
                (asset_dir(out, asset.name) / RESULT_NAME).unlink(missing_ok=True)  # what is there now is new
                proc = ctx.Process(target=_child, args=(asset, out, threads), name=f"vigil-fleet-{asset.name}")
                proc.start()
                running[proc.sentinel] = (proc, asset, time.time())
            for sentinel in multiprocessing.connection.wait(list(running), timeout=1.0):
                proc, asset, started = running.pop(sentinel)
                proc.join()
                result = read_result(out, asset.name)
                if result is None:
                    result = lost_result(asset, f"its process died ({_exit_text(proc.exitcode)}) before it "
                                                f"finished; see {asset_dir(out, asset.name) / 'log.txt'}", started)
                    write_result(asset_dir(out, asset.name), result)
                done(result)
    finally:
        for proc, _asset, _started in running.values():  # interrupted: leave no orphan training
            proc.terminate()
            proc.join(10)


def _ray_task(asset: Asset, out: str, threads: int) -> dict[str, Any]:
    return run_asset(asset, Path(out), threads)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` nobody listens on is one line now (Ray itself would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" or a ray:// URL: Ray resolves those itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise VigilInputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                              key="--ray") from None


def run_ray(assets: list[Asset], out: Path, *, address: str, threads: int, done: Done) -> dict[str, Any]:
    """Every asset as one Ray task on the cluster at ``address``; returns what the cluster offered."""
    check_reachable(address)
    try:
        import ray
    except ModuleNotFoundError:
        raise VigilInputError("--ray needs the fleet extra: pip install 'vigil-edge[fleet]'", key="--ray") from None
    # Ray reports usage statistics to its makers unless told not to; a training tool should not.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VigilInputError(f"cannot reach the Ray cluster at {address!r}: {first}", key="--ray") from None
    try:
        cluster = {"address": address, "cpus": ray.cluster_resources().get("CPU"),
                   "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
        task = ray.remote(num_cpus=threads, max_calls=1, max_retries=0)(_ray_task)
        started = time.time()
        refs = {task.remote(asset, str(out), threads): asset for asset in assets}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                asset = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died or Ray lost the task: that asset fails, the rest go on
                    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    result = lost_result(asset, f"Ray task failed: {type(exc).__name__}: {why}"[:400], started)
                    asset_dir(out, asset.name).mkdir(parents=True, exist_ok=True)
                    write_result(asset_dir(out, asset.name), result)
                done(result)
        return cluster
    finally:
        ray.shutdown()
