"""vigil-edge's workstation side: the ``vigil`` typer CLI, ``vigil demo`` and ``vigil package``.

Nothing here runs on the device; :mod:`edge_agent` is the device's package and
never imports this one. Dependencies point one way: ``vigil`` -> ``trainer`` /
``converter`` -> ``edge_agent``.
"""
