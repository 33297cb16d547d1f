"""install.sh run for real in a staging root (DESTDIR): real venv, real offline pip install from the
package's wheelhouse, real ``vigil agent check-config``; only systemctl is a stand-in that records calls."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.test_agent_service import vigil_argv, write_stamped_csv
from tests.test_config_checks import repack
from vigil.packaging import build_package, install_script

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "firmware_configs" / "systemd"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def device_config(source_path: str, device_id: str = "gw-1") -> str:
    return (f'[device]\nid = "{device_id}"\n\n[bundle]\npath = "model.vigil"\n\n'
            f'[source]\nkind = "replay"\npath = "{source_path}"\npace = "fast"\n\n'
            f'[sinks]\njsonl = "/var/lib/vigil/{device_id}-alerts.jsonl"\n')


def unpack(archive: Path, where: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    return next(p for p in where.iterdir() if p.is_dir())


class Device:
    """A staging root with a systemctl on PATH that only writes down what it was asked."""

    def __init__(self, root: Path) -> None:
        self.root = root / "root"
        self.bin = root / "bin"
        self.calls = root / "systemctl.log"
        self.bin.mkdir(parents=True)
        fake = self.bin / "systemctl"
        fake.write_text(f'#!/bin/sh\necho "$*" >> "{self.calls}"\n')
        fake.chmod(0o755)

    def install(self, package_dir: Path, *args: str, python: str = "python3") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DESTDIR": str(self.root), "PATH": f"{self.bin}:{os.environ['PATH']}", "PYTHON": python}
        env.pop("PYTHONPATH", None)
        return subprocess.run(["sh", str(package_dir / "install.sh"), *args], capture_output=True, text=True,
                              env=env, timeout=600)

    def systemctl_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def package(tmp: Path, bundle: Path, config_text: str, name: str, *extra: str) -> Path:
    config = tmp / f"{name}.toml"
    config.write_text(config_text)
    out = tmp / f"{name}.tar.gz"
    result = subprocess.run(vigil_argv("package", "--bundle", str(bundle), "--config", str(config),
                                       "--out", str(out), "--target", "x86_64", "--python", "3.11", *extra),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"vigil package --target x86_64 (NEEDS NETWORK ACCESS TO PyPI): {result.stderr}"
    return unpack(out, tmp / f"{name}-unpacked")


@pytest.mark.slow  # a real venv + offline install of the edge wheels (~30 s), downloads them once from PyPI
def test_install_keeps_the_fixed_config_enables_after_check_and_runs_instances(
        tmp_path: Path, tiny_bundle_3f: Path) -> None:
    if sys.version_info[:2] != (3, 11):
        pytest.fail("this test installs a Python 3.11 wheelhouse with the host's python3: run it on 3.11")
    bundle = repack(tiny_bundle_3f, tmp_path / "pump.vigil", sampling_rate_hz=100.0)
    pkg = package(tmp_path, bundle, device_config("/var/lib/vigil/missing.csv"), "gw")
    assert len(list((pkg / "wheelhouse").glob("*.whl"))) >= 10
    device = Device(tmp_path / "dev")

    # 1. The shipped config names a file that is not there: the check fails, nothing is enabled.
    first = device.install(pkg)
    assert first.returncode == 1, first.stderr
    assert "config check failed" in first.stderr and "source.path" in first.stderr
    assert device.systemctl_calls() == []
    conf = device.path("/etc/vigil/agent.toml")
    assert conf.read_text() == (pkg / "agent.toml").read_text()
    env_file = device.path("/etc/vigil/agent.env")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and "VIGIL_MQTT_PASSWORD" in env_file.read_text()
    assert device.path("/etc/vigil/ca.crt.example").is_file() and not device.path("/etc/vigil/ca.crt").exists()
    assert device.path(f"/var/lib/vigil/{bundle.name}").read_bytes() == bundle.read_bytes()

    # 2. The user fixes /etc/vigil/agent.toml and runs install.sh again: their file stays, the service starts.
    fixed = conf.read_text().replace("/var/lib/vigil/missing.csv", "/var/lib/vigil/data.csv")
    conf.write_text(fixed)
    write_stamped_csv(device.path("/var/lib/vigil/data.csv"))
    env_file.write_text("VIGIL_MQTT_PASSWORD=set-by-user\n")
    second = device.install(pkg)
    assert second.returncode == 0, second.stderr
    assert conf.read_text() == fixed and "kept your /etc/vigil/agent.toml" in second.stdout
    assert device.path("/etc/vigil/agent.toml.new").read_text() == (pkg / "agent.toml").read_text()
    assert env_file.read_text() == "VIGIL_MQTT_PASSWORD=set-by-user\n"  # never overwritten
    assert device.systemctl_calls() == ["daemon-reload", "enable vigil-agent.service", "restart vigil-agent.service"]
    assert device.path("/etc/systemd/system/vigil-agent.service").read_bytes() == \
        (UNITS / "vigil-agent.service").read_bytes()
    site = list(device.path("/opt/vigil/venv/lib").glob("python3.*/site-packages"))[0]
    assert (site / "ai_edge_litert").is_dir() and (site / "edge_agent").is_dir()
    assert not (site / "tensorflow").exists()

    # 3. --replace-config: the packaged file goes in, the user's is kept as .bak (and fails the check again).
    third = device.install(pkg, "--replace-config", "--no-start")
    assert third.returncode == 1 and device.path("/etc/vigil/agent.toml.bak").read_text() == fixed

    # 4. A second sensor on the same gateway: instance pump2 of the template unit, its own config and state.
    device.path("/var/lib/vigil/pump2").mkdir()
    write_stamped_csv(device.path("/var/lib/vigil/pump2/data.csv"))
    pkg2 = package(tmp_path, bundle, device_config("/var/lib/vigil/pump2/data.csv", "pump2"), "pump2",
                   "--instance", "pump2")
    before = len(device.systemctl_calls())
    fourth = device.install(pkg2)
    assert fourth.returncode == 0, fourth.stderr
    assert device.systemctl_calls()[before:] == ["daemon-reload", "enable vigil-agent@pump2.service",
                                                 "restart vigil-agent@pump2.service"]
    config2 = tomllib.loads(device.path("/etc/vigil/pump2.toml").read_text())
    assert config2["bundle"]["path"] == f"/var/lib/vigil/pump2/{bundle.name}"
    assert device.path(f"/var/lib/vigil/pump2/{bundle.name}").is_file()
    assert device.path("/etc/systemd/system/vigil-agent@.service").read_bytes() == \
        (UNITS / "vigil-agent@.service").read_bytes()


def test_install_refuses_armv7l_with_python_3_13_before_changing_anything(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    script = pkg / "install.sh"
    script.write_text(install_script("m.vigil", "vigil_edge-0.1.0-py3-none-any.whl"))
    fake_python = tmp_path / "python-armv7l"  # a 32-bit Pi's python3 as install.sh probes it
    fake_python.write_text('#!/bin/sh\necho "armv7l 3.13"\n')
    fake_python.chmod(0o755)
    device = Device(tmp_path / "dev")
    result = device.install(pkg, python=str(fake_python))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "armv7l" in lines[0] and "Python 3.11" in lines[0] and "64-bit" in lines[0]
    assert not device.root.exists() and device.systemctl_calls() == []


def test_install_refuses_a_wheelhouse_for_another_cpu(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "install.sh").write_text(install_script("m.vigil", "w.whl", wheelhouse=("aarch64", "3.11")))
    device = Device(tmp_path / "dev")
    result = device.install(pkg, python=sys.executable)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "wheelhouse is for aarch64 with Python 3.11" in result.stderr and "--target" in result.stderr
    assert not device.root.exists()


@pytest.mark.parametrize("unit", ["vigil-agent.service", "vigil-agent@.service"])
def test_units_pass_systemd_analyze_verify(tmp_path: Path, unit: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found (apt-get install systemd): the unit files are checked with it")
    # verify needs an executable ExecStart; the instance name fills %i.
    name = unit.replace("@.", "@pump1.")
    text = (UNITS / unit).read_text().replace("/opt/vigil/venv/bin/vigil", "/bin/true")
    (tmp_path / name).write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_template_unit_differs_from_the_single_unit_only_in_the_instance_lines() -> None:
    single = (UNITS / "vigil-agent.service").read_text().splitlines()
    template = (UNITS / "vigil-agent@.service").read_text().splitlines()
    body = [ln for ln in template if not ln.startswith("#") and "%i" not in ln]
    assert body == [ln for ln in single if not ln.startswith("#") and ln not in {
        "ExecStart=/opt/vigil/venv/bin/vigil agent run --config /etc/vigil/agent.toml", "StateDirectory=vigil",
        "Description=vigil-edge anomaly detection agent"}]
    assert "StateDirectory=vigil/%i" in template and "EnvironmentFile=-/etc/vigil/%i.env" in template


def test_package_refuses_a_bad_instance_name(tmp_path: Path) -> None:
    from edge_agent.errors import VigilInputError

    with pytest.raises(VigilInputError, match="instance name"):
        build_package(bundle=tmp_path / "x.vigil", config=tmp_path / "c.toml", out=tmp_path / "o.tar.gz",
                      instance="../etc")
