"""``vigil package``: one DEVICE.tar.gz with everything a device needs.

Contents (under one top directory named after the archive)::

    vigil_edge-<version>-py3-none-any.whl   this project, built here with the stdlib
    <bundle>.vigil                          the model bundle (verified before packing)
    agent.toml                              the profile, bundle.path -> the installed bundle
    vigil-agent.service                     the systemd unit (vigil-agent@.service with --instance)
    install.sh                              venv with only the edge extra, files, enable
    agent.env.example, ca.crt.example       templates of the files the profiles refer to
    wheelhouse/*.whl                        with --target: every wheel of the [edge] extra for that
                                            CPU and Python, so install.sh needs no network

The wheel is assembled directly (zip + dist-info from ``pyproject.toml``)
instead of running ``pip wheel``: it needs no network, no build isolation, no
``build/`` litter in the source tree, and takes well under a second. It is a
plain pure-Python wheel (``py3-none-any``) that pip installs like any other.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.bundle import Bundle, load_bundle, verify_bundle_signature
from edge_agent.config import AgentConfig, check_source_against_bundle, load_config, read_toml
from edge_agent.config_values import read_public_key_file
from edge_agent.errors import VigilInputError

INSTALL_PREFIX = "/opt/vigil"
CONFIG_DIR = "/etc/vigil"
STATE_DIR = "/var/lib/vigil"
CONFIG_NAME = "agent.toml"
UNIT_NAME = "vigil-agent.service"
TEMPLATE_UNIT_NAME = "vigil-agent@.service"
TEMPLATES = ("agent.env.example", "ca.crt.example")
_INSTANCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class PackageResult:
    path: Path
    size: int
    members: list[str]


def project_root() -> Path:
    """The source tree this ``edge_agent`` was imported from (needs ``pyproject.toml``)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise VigilInputError("vigil package runs from a source checkout (pyproject.toml not found next to "
                              f"{root / 'edge_agent'})")
    return root


def shipped_unit(instance: str | None = None) -> Path:
    return project_root() / "firmware_configs" / "systemd" / (TEMPLATE_UNIT_NAME if instance else UNIT_NAME)


@dataclass(frozen=True)
class Layout:
    """Where install.sh puts things: one agent (``agent.toml``) or instance NAME of the template unit."""

    instance: str | None = None

    @property
    def config_name(self) -> str:
        return f"{self.instance}.toml" if self.instance else CONFIG_NAME

    @property
    def state_dir(self) -> str:
        return f"{STATE_DIR}/{self.instance}" if self.instance else STATE_DIR

    @property
    def unit_file(self) -> str:
        return TEMPLATE_UNIT_NAME if self.instance else UNIT_NAME

    @property
    def service(self) -> str:
        return f"vigil-agent@{self.instance}.service" if self.instance else UNIT_NAME


def check_instance(instance: str | None) -> None:
    if instance is not None and not _INSTANCE_RE.fullmatch(instance):
        raise VigilInputError(f"instance name {instance!r}: use letters, digits, '-' and '_' (at most 64)",
                              key="--instance")


# --------------------------------------------------------------------------- wheel


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _requirement(req: str, extra: str | None) -> str:
    if extra is None:
        return req
    name, sep, marker = req.partition(";")
    if sep:
        return f'{name.strip()}; ({marker.strip()}) and extra == "{extra}"'
    return f'{name.strip()}; extra == "{extra}"'


def _metadata(project: dict[str, Any]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    license_text = project.get("license", {}).get("text") if isinstance(project.get("license"), dict) else None
    if license_text:
        lines.append(f"License: {license_text}")
    lines.extend(f"Requires-Dist: {_requirement(r, None)}" for r in project.get("dependencies", []))
    for extra, reqs in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines.extend(f"Requires-Dist: {_requirement(r, extra)}" for r in reqs)
    return "\n".join(lines) + "\n"


def _package_files(root: Path, patterns: list[str]) -> list[Path]:
    """Files of the top-level packages matching setuptools ``include`` patterns."""
    tops = sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
                  and any(re.fullmatch(pat.replace("*", ".*"), p.name) for pat in patterns))
    files = []
    for top in tops:
        for file in sorted(top.rglob("*")):
            rel = file.relative_to(root)
            if file.is_file() and not _SKIP_PARTS.intersection(rel.parts) and file.suffix not in _SKIP_SUFFIXES:
                files.append(rel)
    return files


def build_wheel(out_dir: Path, root: Path | None = None) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` of the project into ``out_dir``."""
    root = root or project_root()
    pyproject = read_toml(root / "pyproject.toml")
    project = pyproject["project"]
    dist = re.sub(r"[-_.]+", "_", project["name"]).lower()
    dist_info = f"{dist}-{project['version']}.dist-info"
    patterns = pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get(
        "include", ["edge_agent*"])
    entries: list[tuple[str, bytes]] = [(str(rel.as_posix()), (root / rel).read_bytes())
                                        for rel in _package_files(root, patterns)]
    scripts = project.get("scripts", {})
    entries.append((f"{dist_info}/METADATA", _metadata(project).encode()))
    entries.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: vigil-package\n"
                    b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    if scripts:
        text = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
        entries.append((f"{dist_info}/entry_points.txt", text.encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist}-{project['version']}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return wheel


# --------------------------------------------------------------------------- config rewrite


def rewrite_bundle_path(text: str, new_path: str) -> str:
    """Set ``[bundle] path`` in TOML text, keeping everything else (comments included)."""
    return rewrite_bundle_key(text, "path", f'"{new_path}"')


def rewrite_bundle_key(text: str, key: str, toml_value: str) -> str:
    """Set ``[bundle] KEY = VALUE`` (one line) in TOML text, keeping everything else."""
    lines = text.splitlines()
    section, header_at, replaced = None, None, False
    new_line = f"{key} = {toml_value}  # set by vigil package"
    for i, line in enumerate(lines):
        header = re.match(r"\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$", line)
        if header:
            section = header.group(1)
            if section == "bundle":
                header_at = i
            continue
        if section == "bundle" and re.match(rf"\s*{re.escape(key)}\s*=", line):
            lines[i], replaced = new_line, True
    if not replaced:
        if header_at is None:
            lines += ["", "[bundle]"]
            header_at = len(lines) - 1
        lines.insert(header_at + 1, new_line)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- archive


def install_script(bundle_name: str, wheel_name: str, layout: Layout | None = None,
                   wheelhouse: tuple[str, str] | None = None) -> str:
    """install.sh with every placeholder filled; ``wheelhouse`` = (machine, python) of the shipped wheels."""
    layout = layout or Layout()
    machine, python = wheelhouse or ("", "")
    template = (project_root() / "firmware_configs" / "install.sh.in").read_text(encoding="utf-8")
    values = {"BUNDLE": bundle_name, "WHEEL": wheel_name, "PREFIX": INSTALL_PREFIX, "CONFIG_DIR": CONFIG_DIR,
              "STATE_BASE": STATE_DIR, "STATE_DIR": layout.state_dir, "CONFIG_NAME": layout.config_name,
              "UNIT": layout.unit_file, "SERVICE": layout.service, "INSTANCE": layout.instance or "",
              "WHEELHOUSE_MACHINE": machine, "WHEELHOUSE_PYTHON": python}
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template)


def edge_requirements(root: Path | None = None) -> list[str]:
    """``Requires-Dist`` lines of the project with its ``[edge]`` extra (as in the wheel's METADATA)."""
    project = read_toml((root or project_root()) / "pyproject.toml")["project"]
    return [*project.get("dependencies", []),
            *(_requirement(r, "edge") for r in project.get("optional-dependencies", {}).get("edge", []))]


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _top_name(out: Path) -> str:
    name = out.name
    for suffix in (".tar.gz", ".tgz"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or "vigil-device"
    return out.stem or "vigil-device"


def build_package(*, bundle: Path, config: Path, out: Path, unit: Path | None = None,
                  trusted_keys: list[Path] | None = None, target: str | None = None,
                  python: str | None = None, instance: str | None = None,
                  find_links: list[Path] | None = None) -> PackageResult:
    """Verify bundle and config, build the wheel, write DEVICE.tar.gz.

    ``trusted_keys``: public key files (``vigil keys new`` writes ``KEY.pub``) written into the shipped
    config's ``[bundle] trusted_keys``; the bundle must already carry a signature one of them verifies,
    so a device is never shipped a config that refuses its own bundle.
    ``target`` (rpi64, rpi32, x86_64) with ``python``: add a wheelhouse for that device (see
    :mod:`vigil.wheelhouse`). ``instance``: install as ``vigil-agent@INSTANCE`` with
    ``/etc/vigil/INSTANCE.toml`` and the state in ``/var/lib/vigil/INSTANCE``.
    """
    bundle, config, out = Path(bundle), Path(config), Path(out)
    check_instance(instance)
    layout = Layout(instance)
    if python is not None and target is None:
        raise VigilInputError("--python chooses the wheelhouse's Python: give --target too", key="--python")
    if target is not None:
        from vigil.wheelhouse import DEFAULT_PYTHON, get_target

        python = python or DEFAULT_PYTHON
        get_target(target, python)  # an impossible target/Python fails before anything is built
    loaded = load_bundle(bundle)  # refuse to ship a damaged bundle
    keys = [read_public_key_file(Path(k), f"--trusted-key {k}") for k in trusted_keys or []]
    if keys:
        verify_bundle_signature(loaded, keys)
    # Keys, types and ranges are checked here; secrets, TLS files and the sensor
    # exist only on the device, where install.sh runs check-config again.
    check_source_fits(load_config(config, check_bundle=False, check_files=False), loaded)
    unit = Path(unit) if unit is not None else shipped_unit(instance)
    if not unit.is_file():
        raise VigilInputError("unit file not found", file=str(unit))
    installed_bundle = f"{layout.state_dir}/{bundle.name}"
    toml_text = rewrite_bundle_path(config.read_text(encoding="utf-8"), installed_bundle)
    if keys:
        toml_text = rewrite_bundle_key(toml_text, "trusted_keys", "[" + ", ".join(f'"{k}"' for k in keys) + "]")
    if read_toml_text(toml_text).get("bundle", {}).get("path") != installed_bundle:
        raise VigilInputError("could not rewrite bundle.path", file=str(config), key="bundle.path")
    templates = project_root() / "firmware_configs" / "templates"
    with tempfile.TemporaryDirectory(prefix="vigil-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        top = _top_name(out)
        wheelhouse_tag = None
        files: list[tuple[str, bytes, int]] = []
        if target is not None and python is not None:
            from vigil.wheelhouse import TARGETS, build_wheelhouse

            wheels = build_wheelhouse(edge_requirements(), target, python, Path(tmp) / "wheelhouse",
                                      find_links=find_links)
            files += [(f"wheelhouse/{w.name}", w.read_bytes(), 0o644) for w in wheels]
            wheelhouse_tag = (TARGETS[target].machine, python)
        files = [
            (wheel.name, wheel.read_bytes(), 0o644),
            (bundle.name, bundle.read_bytes(), 0o644),
            (layout.config_name, toml_text.encode(), 0o644),
            (layout.unit_file, unit.read_bytes(), 0o644),
            ("install.sh", install_script(bundle.name, wheel.name, layout, wheelhouse_tag).encode(), 0o755),
            *[(name, (templates / name).read_bytes(), 0o644) for name in TEMPLATES],
            *files,
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for name, data, mode in files:
            _add(tar, f"{top}/{name}", data, mode)
    return PackageResult(out, out.stat().st_size, [f"{top}/{name}" for name, _, _ in files])


def check_source_fits(config: AgentConfig, bundle: Bundle) -> None:
    """The profile's source gives the bundle's features at its rate (a device would refuse it otherwise).

    A replayed file that is not here (it lives on the device) cannot be checked here.
    """
    source = config.source
    if source.kind == "replay" and not source.path.is_file():
        return
    check_source_against_bundle(config, bundle)


def read_toml_text(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)
