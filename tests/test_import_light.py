"""The device side stays light: no edge_agent module pulls in the training stack."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import edge_agent

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "tf_keras", "sklearn", "matplotlib")

CHECK = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"imported": len(names), "heavy": heavy}))
"""


def edge_modules(include_cli: bool = False) -> list[str]:
    # __main__ modules run the CLI when imported: not a library module.
    names = [m.name for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent.")
             if not m.name.endswith("__main__")]
    return sorted(n for n in names if include_cli or not (n == "vigil.cli" or n.startswith("vigil.cli.")))


def run_check(names: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", CHECK, json.dumps(names), json.dumps(HEAVY)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_edge_module_imports_without_the_training_stack() -> None:
    names = edge_modules()
    # The modules the device runs on must be among them.
    for expected in ("edge_agent.service", "edge_agent.config", "edge_agent.runtime", "edge_agent.systemd",
                     "edge_agent.health", "edge_agent.quality", "edge_agent.sources.factory"):
        assert expected in names
    report = run_check(names)
    assert report == {"imported": len(names), "heavy": []}


def test_the_cli_imports_without_the_training_stack() -> None:
    # Command modules import trainer/converter only inside command bodies.
    report = run_check(["vigil.cli"] + [n for n in edge_modules(include_cli=True) if n.startswith("vigil.cli.")])
    assert report["heavy"] == []
