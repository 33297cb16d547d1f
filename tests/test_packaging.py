"""``vigil package``: the device archive holds a working wheel, bundle, config, unit and install.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from edge_agent.errors import VigilInputError
from tests.test_agent_service import vigil
from tests.test_config_checks import repack
from vigil.packaging import build_wheel, rewrite_bundle_path

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "firmware_configs" / "profiles"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_rewrite_bundle_path_keeps_the_rest() -> None:
    text = ('# top\n[device]\nid = "a"\n\n[bundle]\npath = "old.vigil"  # here\nnum_threads = 2\n'
            '[source]\npath = "x.csv"\n')
    out = tomllib.loads(rewrite_bundle_path(text, "/var/lib/vigil/m.vigil"))
    assert out["bundle"] == {"path": "/var/lib/vigil/m.vigil", "num_threads": 2}
    assert out["source"]["path"] == "x.csv" and "# top" in rewrite_bundle_path(text, "/x")
    assert tomllib.loads(rewrite_bundle_path('[device]\nid = "a"\n', "/m.vigil"))["bundle"]["path"] == "/m.vigil"
    added = tomllib.loads(rewrite_bundle_path('[bundle]\nnum_threads = 1\n', "/m.vigil"))
    assert added["bundle"] == {"path": "/m.vigil", "num_threads": 1}


@pytest.mark.slow  # uses the converted tiny bundle
def test_package_contains_wheel_bundle_config_unit_and_install_script(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    out = tmp_path / "pi4-pump-01.tar.gz"
    bundle = repack(tiny_bundle_3f, tmp_path / tiny_bundle_3f.name, features=["x", "y", "z"], sampling_rate_hz=400.0)
    result = vigil("package", "--bundle", str(bundle), "--config", str(PROFILES / "rpi4-adxl345.toml"),
                   "--out", str(out))
    assert result.returncode == 0, result.stderr
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert all(name.startswith("pi4-pump-01/") for name in names)
        files = {Path(name).name: tar.extractfile(name).read() for name in names}  # type: ignore[union-attr]
        mode = tar.getmember("pi4-pump-01/install.sh").mode
    wheels = [n for n in files if n.endswith(".whl")]
    assert len(wheels) == 1 and wheels[0].startswith("vigil_edge-")
    assert files[bundle.name] == bundle.read_bytes()
    assert files["vigil-agent.service"] == (REPO / "firmware_configs/systemd/vigil-agent.service").read_bytes()
    config = tomllib.loads(files["agent.toml"].decode())
    assert config["bundle"]["path"] == f"/var/lib/vigil/{tiny_bundle_3f.name}"
    assert config["source"]["kind"] == "adxl345" and config["device"]["id"] == "pi4-pump-01"
    script = files["install.sh"].decode()
    assert mode & 0o111 and not re.search(r"@[A-Z_]+@", script)  # every placeholder filled
    assert "[edge]" in script and wheels[0] in script and tiny_bundle_3f.name in script
    (tmp_path / "install.sh").write_text(script)
    syntax = subprocess.run(["sh", "-n", str(tmp_path / "install.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_wheel_installs_and_carries_the_edge_extra(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "edge_agent/service.py" in names and "edge_agent/schemas/alert.schema.json" in names
    assert not any("__pycache__" in n for n in names)
    assert "Provides-Extra: edge" in metadata
    assert 'Requires-Dist: paho-mqtt>=2.0,<3; extra == "edge"' in metadata
    assert "Requires-Dist: ai-edge-litert>=1.2; (platform_machine != 'armv7l') and extra == \"edge\"" in metadata
    assert "vigil = vigil.cli:main" in entry_points
    # pip accepts it (RECORD, WHEEL, METADATA) and the installed copy imports on its own.
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                          "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0, pip.stderr
    check = subprocess.run([sys.executable, "-c",
                            "import edge_agent.config, edge_agent.service as s; print(s.__file__)"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(target)},
                           cwd=tmp_path, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().startswith(str(target))


def test_package_refuses_a_damaged_bundle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vigil"
    bad.write_bytes(b"not a bundle")
    result = vigil("package", "--bundle", str(bad), "--config", str(PROFILES / "replay.toml"),
                   "--out", str(tmp_path / "x.tar.gz"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "bad.vigil" in result.stderr and not (tmp_path / "x.tar.gz").exists()


PROFILE_RATES = {"rpi4-adxl345.toml": 400.0, "rpi-zero2w-mpu6050.toml": 200.0, "gateway-serial.toml": 100.0,
                 "replay.toml": 250.0}


@pytest.mark.parametrize("profile", sorted(PROFILES.glob("*.toml")), ids=lambda p: p.name)
@pytest.mark.slow  # uses the converted tiny bundle
def test_every_profile_packages(tmp_path: Path, tiny_bundle_3f: Path, profile: Path) -> None:
    from vigil.packaging import build_package

    assert set(PROFILE_RATES) == {p.name for p in PROFILES.glob("*.toml")}
    bundle = repack(tiny_bundle_3f, tmp_path / "xyz.vigil", features=["x", "y", "z"],
                    sampling_rate_hz=PROFILE_RATES[profile.name])
    result = build_package(bundle=bundle, config=profile, out=tmp_path / "dev.tar.gz")
    assert result.size > 0 and len(result.members) == 5


@pytest.mark.slow  # uses the converted tiny bundle
def test_package_refuses_a_bundle_the_profile_cannot_feed(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from vigil.packaging import build_package

    demo_like = repack(tiny_bundle_3f, tmp_path / "xyz250.vigil", features=["x", "y", "z"], sampling_rate_hz=250.0)
    for bundle, key in [(demo_like, "source.rate_hz"), (tiny_bundle_3f, "source")]:  # 250 Hz; features f0..f2
        with pytest.raises(VigilInputError) as err:
            build_package(bundle=bundle, config=PROFILES / "rpi4-adxl345.toml", out=tmp_path / "x.tar.gz")
        assert err.value.key == key and "\n" not in str(err.value)
    assert not (tmp_path / "x.tar.gz").exists()


def test_package_carries_the_public_key_into_the_device_config(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from edge_agent.bundle import sign_bundle
    from edge_agent.config import load_config
    from edge_agent.signing import new_signing_key, write_key_file

    key = new_signing_key()
    write_key_file(tmp_path / "fleet.key", key)
    public = (tmp_path / "fleet.key.pub").read_text().strip()
    bundle = repack(tiny_bundle_3f, tmp_path / "signed.vigil", features=["x", "y", "z"], sampling_rate_hz=400.0)
    unsigned = tmp_path / "unsigned.vigil"
    unsigned.write_bytes(bundle.read_bytes())
    bundle.write_bytes(sign_bundle(bundle.read_bytes(), key))
    args = ["--config", str(PROFILES / "rpi4-adxl345.toml"), "--trusted-key", str(tmp_path / "fleet.key.pub")]

    refused = vigil("package", "--bundle", str(unsigned), *args, "--out", str(tmp_path / "no.tar.gz"))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no.tar.gz").exists()

    out = tmp_path / "dev.tar.gz"
    result = vigil("package", "--bundle", str(bundle), *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    with tarfile.open(out) as tar:
        text = next(tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith("agent.toml"))  # type: ignore[union-attr]
    config = tomllib.loads(text.decode())
    assert config["bundle"]["trusted_keys"] == [public]
    # The shipped config accepts the signed bundle and would refuse the unsigned one.
    device = tmp_path / "device"
    device.mkdir()
    shipped = tomllib.loads(text.decode())
    (device / "agent.toml").write_text(text.decode().replace(shipped["bundle"]["path"], str(bundle)))
    assert load_config(device / "agent.toml", check_source=False, check_files=False).bundle is not None
    (device / "agent.toml").write_text(text.decode().replace(shipped["bundle"]["path"], str(unsigned)))
    with pytest.raises(Exception, match="not signed"):
        load_config(device / "agent.toml", check_source=False, check_files=False)
