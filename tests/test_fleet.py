"""``vigil fleet train``: real training, evaluation and conversion of tiny assets on the local process
pool and on a real Ray instance this test starts on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import VigilInputError
from tests.models import normal_rows, with_anomalies
from tests.test_agent_service import vigil_argv
from vigil.fleet.job import is_finished
from vigil.fleet.spec import load_fleet

# Small enough to train, evaluate and convert in seconds on an idle core.
TINY = '''
[defaults]
window = 16
hop = 4
epochs = 1
units = [8, 4]
windows_per_epoch = 128
quantize = "float32"
'''


def write_asset_csv(path: Path, seed: int, n_rows: int = 900) -> Path:
    rows = with_anomalies(normal_rows(n_rows, 3, seed), [(700, 740)])
    stamps = 1_790_000_000.0 + np.arange(n_rows) / 100.0
    np.savetxt(path, np.column_stack([stamps, rows]), delimiter=",", header="timestamp,x,y,z", comments="",
               fmt="%.6f")
    return path


def write_fleet(folder: Path, assets: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fleet = folder / "fleet.toml"
    fleet.write_text(TINY + assets)
    return fleet


def fleet_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(vigil_argv("fleet", "train", *args), capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "TF_NUM_INTEROP_THREADS": "1", **(env or {})})


def summary(out: Path) -> dict:
    return json.loads((out / "fleet.json").read_text())


def by_name(doc: dict) -> dict[str, dict]:
    return {a["asset"]: a for a in doc["assets"]}


@pytest.mark.parametrize(("text", "key", "words"), [
    ('[[asset]]\nname = "a"\ndata = "a.csv"\nwindw = 3\n', "asset[0].windw", "unknown key"),
    ('[[asset]]\nname = "a"\ndata = "a.csv"\nwindow = "64"\n', "asset[0].window", "must be an int"),
    ('[[asset]]\nname = "a"\ndata = "a.csv"\n[[asset]]\nname = "a"\ndata = "b.csv"\n', "asset.name", "twice"),
    ('[[asset]]\nname = "../x"\ndata = "a.csv"\n', "asset[0].name", "folder"),
    ('[[asset]]\nname = "a"\ndata = "a.csv"\nrows = "9:3"\n', "asset[0].rows", "START"),
    ('[[asset]]\nname = "a"\n', "asset[0].data", "required"),
    ('[defaults]\nepochs = 1\n', "asset", "no assets"),
    ('[defaults]\nlabels = "x.json"\n[[asset]]\nname = "a"\ndata = "a.csv"\n', "defaults.labels", "unknown"),
])
def test_fleet_file_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(text)
    with pytest.raises(VigilInputError) as err:
        load_fleet(fleet)
    assert err.value.key == key and words in str(err.value) and "\n" not in str(err.value)


def test_fleet_paths_are_relative_to_the_fleet_file_and_defaults_apply(tmp_path: Path) -> None:
    fleet = write_fleet(tmp_path / "f", '[[asset]]\nname = "a"\ndata = "d/a.csv"\nepochs = 3\nlabels = "l.json"\n')
    (asset,) = load_fleet(fleet)
    assert asset.data == (tmp_path / "f" / "d" / "a.csv").resolve() and asset.labels == (tmp_path / "f" / "l.json")
    assert asset.train["epochs"] == 3 and asset.train["window"] == 16 and asset.convert == {"quantize": "float32"}
    before = asset.fingerprint()
    (tmp_path / "f" / "d").mkdir()
    write_asset_csv(tmp_path / "f" / "d" / "a.csv", 0)
    assert load_fleet(fleet)[0].fingerprint() != before  # new data: a finished asset would be trained again


@pytest.mark.slow  # trains, evaluates and converts a tiny model twice (TensorFlow in fresh processes)
def test_fleet_on_the_process_pool_isolates_a_failure_and_resumes(tmp_path: Path) -> None:
    from edge_agent.bundle import load_bundle

    folder = tmp_path / "fleet"
    folder.mkdir()
    write_asset_csv(folder / "pump.csv", 0)
    (folder / "pump-labels.json").write_text("[[700, 739]]")
    fleet = write_fleet(folder, '''
[[asset]]
name = "pump"
data = "pump.csv"
rows = "0:600"
labels = "pump-labels.json"

[[asset]]
name = "fan"
data = "fan.csv"
rows = "0:600"
''')
    out = tmp_path / "out"
    first = fleet_cli(str(fleet), "--out", str(out), "--workers", "2")
    assert first.returncode == 1, first.stderr  # one asset failed, the other finished
    assert "Traceback" not in first.stdout + first.stderr
    doc = summary(out)
    assert doc["engine"] == "local" and doc["counts"] == {"assets": 2, "ok": 1, "failed": 1, "skipped": 0}
    pump, fan = by_name(doc)["pump"], by_name(doc)["fan"]
    assert fan["status"] == "failed" and "fan.csv" in fan["error"] and "\n" not in fan["error"]
    assert pump["status"] == "ok" and pump["threshold"] > 0
    bundle = Path(pump["bundle"]["path"])
    assert pump["bundle"]["mode"] == "float32" and pump["bundle"]["bytes"] == bundle.stat().st_size
    assert load_bundle(bundle).manifest["features"] == ["x", "y", "z"]
    assert pump["metrics"]["roc_auc"] is not None and pump["metrics"]["label_ranges"] == 1
    assert set(pump["times_s"]) == {"train", "evaluate", "convert"} and pump["pid"] != os.getpid()
    page = (out / "fleet.html").read_text()
    assert "pump" in page and "fan.csv" in page and 'href="pump/eval/report.html"' in page
    assert "[1/2]" in first.stdout and "FAILED in train" in first.stdout

    # Resume: the finished asset is skipped untouched, the failed one is tried again (and fails again).
    pump_result, fan_result = out / "pump" / "result.json", out / "fan" / "result.json"
    pump_stamp, fan_stamp = pump_result.stat().st_mtime_ns, fan_result.stat().st_mtime_ns
    second = fleet_cli(str(fleet), "--out", str(out), "--workers", "2")
    assert second.returncode == 1, second.stderr
    assert "pump: finished earlier" in second.stdout and pump_result.stat().st_mtime_ns == pump_stamp
    assert fan_result.stat().st_mtime_ns != fan_stamp and "[1/1] fan FAILED" in second.stdout
    assert summary(out)["counts"] == {"assets": 2, "ok": 1, "failed": 1, "skipped": 1}
    # A changed spec is not "finished": the asset is trained again.
    fleet.write_text(fleet.read_text().replace('rows = "0:600"\nlabels', 'rows = "0:650"\nlabels'))
    (pump,) = load_fleet(fleet)[:1]
    assert not is_finished(pump, out)


LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture()
def local_ray(tmp_path: Path):
    """A real Ray instance on 127.0.0.1 owned by this test (stopped with it; nothing else is touched)."""
    # Keep every Ray address on loopback (Ray otherwise swaps 127.0.0.1 for the host's outward address);
    # read by ray at import, so set before it, and passed on to the CLI's process through the environment.
    os.environ.update(LOOPBACK_RAY)
    try:
        import ray
    except ModuleNotFoundError:
        pytest.fail("ray is not installed: pip install -e '.[fleet]' (CI must install the fleet extra)")
    context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                       _temp_dir=str(Path("/tmp") / f"ray-vigil-{os.getpid()}"))
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.mark.slow  # a Ray instance plus one tiny train + convert in a Ray worker
def test_fleet_on_a_real_local_ray_instance(tmp_path: Path, local_ray: str) -> None:
    folder = tmp_path / "fleet"
    folder.mkdir()
    write_asset_csv(folder / "pump.csv", 0)
    (folder / "bad.csv").write_text("timestamp,x,y,z\n1,2,3,oops\n")
    fleet = write_fleet(folder, '''
[[asset]]
name = "pump"
data = "pump.csv"
rows = "0:600"

[[asset]]
name = "bad"
data = "bad.csv"
''')
    out = tmp_path / "out"
    assert local_ray.startswith("127.0.0.1:")
    result = fleet_cli(str(fleet), "--out", str(out), "--ray", local_ray, env=LOOPBACK_RAY)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    doc = summary(out)
    assert doc["engine"] == "ray" and doc["ray"]["cpus"] == 2 and doc["ray"]["nodes"] == 1
    pump, bad = by_name(doc)["pump"], by_name(doc)["bad"]
    assert pump["status"] == "ok" and pump["bundle"]["mode"] == "float32" and Path(pump["bundle"]["path"]).is_file()
    assert bad["status"] == "failed" and "bad.csv" in bad["error"]
    assert doc["counts"] == {"assets": 2, "ok": 1, "failed": 1, "skipped": 0}


def test_fleet_ray_address_nobody_listens_on_is_one_line(tmp_path: Path) -> None:
    from tests.broker import free_port

    folder = tmp_path / "fleet"
    folder.mkdir()
    write_asset_csv(folder / "pump.csv", 0)
    fleet = write_fleet(folder, '[[asset]]\nname = "pump"\ndata = "pump.csv"\n')
    result = fleet_cli(str(fleet), "--out", str(tmp_path / "out"), "--ray", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ray" in lines[0] and "Traceback" not in result.stderr, result.stderr
