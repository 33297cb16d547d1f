"""``vigil fleet train FLEET.toml``: one model per asset, trained, evaluated and converted in parallel.

:mod:`vigil.fleet.spec` reads FLEET.toml, :mod:`vigil.fleet.job` does one asset through the
trainer's and converter's entry points, :mod:`vigil.fleet.engines` runs the assets on a local
process pool or a Ray cluster, :mod:`vigil.fleet.summary` writes fleet.json and fleet.html.
"""

from vigil.fleet.run import FleetRun, train_fleet

__all__ = ["FleetRun", "train_fleet"]
