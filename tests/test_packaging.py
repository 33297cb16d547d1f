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
from tests.test_agent_service import vigil, vigil_argv
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
    assert result.size > 0 and len(result.members) == 7  # + agent.env.example, ca.crt.example


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


# --------------------------------------------------------------------------- --target wheelhouses


def test_target_tags_cover_the_wheels_devices_really_get() -> None:
    from vigil.wheelhouse import platform_tags, wheel_fits

    bookworm = (2, 36)
    tags = platform_tags("aarch64", bookworm)
    # ai-edge-litert carries manylinux_2_27 only; pip does not derive it from manylinux2014.
    assert {"manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"} <= set(tags)
    assert "manylinux_2_38_aarch64" not in tags and tags[0] == "manylinux_2_36_aarch64"
    assert wheel_fits("ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl", "aarch64", bookworm, "3.11")
    assert wheel_fits("pynacl-1.6.2-cp38-abi3-manylinux_2_34_aarch64.whl", "aarch64", bookworm, "3.13")
    assert wheel_fits("paho_mqtt-2.2.0-py3-none-any.whl", "armv7l", bookworm, "3.11")
    assert wheel_fits("tflite_runtime-2.14.0-cp311-cp311-manylinux_2_34_armv7l.whl", "armv7l", bookworm, "3.11")
    assert wheel_fits("numpy-1.26.4-cp311-cp311-linux_armv7l.whl", "armv7l", bookworm, "3.11")  # piwheels' tag
    assert not wheel_fits("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl", "aarch64", bookworm, "3.11")
    assert not wheel_fits("ai_edge_litert-2.3.0-cp313-cp313-manylinux_2_27_aarch64.whl", "aarch64", bookworm, "3.11")
    assert not wheel_fits("x-1.0-cp311-cp311-manylinux_2_39_aarch64.whl", "aarch64", bookworm, "3.11")  # glibc


def test_target_markers_pick_the_interpreter_of_the_device_not_of_this_machine() -> None:
    from vigil.packaging import edge_requirements
    from vigil.wheelhouse import marker_environment, target_requirements

    def names(machine: str, python: str) -> set[str]:
        reqs = target_requirements(edge_requirements(), {"edge"}, marker_environment(machine, python))
        return {f"{r.name}{r.specifier}" for r in reqs}

    pi32 = names("armv7l", "3.11")
    assert any(n.startswith("tflite-runtime") for n in pi32) and "numpy<2" in pi32
    assert not any(n.startswith("ai-edge-litert") for n in pi32)
    pi64 = names("aarch64", "3.13")
    assert any(n.startswith("ai-edge-litert") for n in pi64) and "numpy<2" not in pi64
    assert not any(n.startswith(("tflite-runtime", "tomli")) for n in pi64)
    assert any(n.startswith("tomli") for n in names("aarch64", "3.10"))


def test_package_for_armv7l_with_python_3_13_fails_first_saying_what_works(tmp_path: Path) -> None:
    out = tmp_path / "pi32.tar.gz"
    result = vigil("package", "--bundle", str(tmp_path / "not-read-yet.vigil"), "--config",
                   str(PROFILES / "rpi4-adxl345.toml"), "--out", str(out), "--target", "rpi32", "--python", "3.13")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "armv7l" in result.stderr and "Python 3.11" in result.stderr and "rpi64" in result.stderr
    assert not out.exists()
    unknown = vigil("package", "--bundle", "x.vigil", "--config", "c.toml", "--out", str(out), "--target", "pi9")
    assert unknown.returncode == 2 and "rpi64" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1


def wheelhouse_of(archive: Path, folder: Path) -> list[Path]:
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return sorted(folder.glob("*/wheelhouse/*.whl"))


@pytest.mark.slow  # downloads ~45 MB of wheels from PyPI (seconds; pip's cache makes re-runs fast)
def test_package_target_rpi64_ships_aarch64_wheels_for_every_dependency(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from vigil.packaging import edge_requirements
    from vigil.wheelhouse import closure, marker_environment, target_requirements, wheel_fits

    bundle = repack(tiny_bundle_3f, tmp_path / "pump.vigil", features=["x", "y", "z"], sampling_rate_hz=400.0)
    out = tmp_path / "pi64.tar.gz"
    result = subprocess.run(vigil_argv("package", "--bundle", str(bundle), "--config",
                                       str(PROFILES / "rpi4-adxl345.toml"), "--out", str(out),
                                       "--target", "rpi64", "--python", "3.11"),
                            capture_output=True, text=True, timeout=600)
    # Without network the line says so ("pip download needs network access to PyPI").
    assert result.returncode == 0, f"vigil package --target rpi64 (NEEDS NETWORK ACCESS TO PyPI): {result.stderr}"
    wheels = wheelhouse_of(out, tmp_path / "x")
    names = [w.name for w in wheels]
    assert all(wheel_fits(n, "aarch64", (2, 36), "3.11") for n in names), names
    assert any(n.startswith("ai_edge_litert-") and "manylinux_2_27_aarch64" in n for n in names), names
    assert any(n.startswith("numpy-") and "aarch64" in n for n in names), names
    # Every dependency of the [edge] extra, transitively, as the device's markers see it.
    env = marker_environment("aarch64", "3.11")
    needed, missing = closure(target_requirements(edge_requirements(), {"edge"}, env), wheels[0].parent, env)
    assert missing == [] and needed == set(wheels)
    script = next(iter((tmp_path / "x").glob("*/install.sh"))).read_text()
    assert 'WHEELHOUSE_MACHINE="aarch64"' in script and 'WHEELHOUSE_PYTHON="3.11"' in script
