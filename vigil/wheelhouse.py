"""Offline wheelhouses for ``vigil package --target``: every wheel a device needs, for its CPU and Python.

pip cannot be asked "what would a Raspberry Pi install": ``--platform`` takes exact tags and pip
does not widen ``manylinux2014_aarch64`` to the ``manylinux_2_27_aarch64`` that ai-edge-litert
carries, and environment markers (``platform_machine == 'armv7l'``) are evaluated on *this*
machine, not the target. So the target is described here (CPU, Python, the OS release that ships
that Python and its glibc), every platform tag that glibc accepts is passed to ``pip download``
explicitly, and the result is checked the other way round: the dependency closure of the
project's ``[edge]`` extra is walked with the target's markers through the downloaded wheels'
own metadata; a missing piece is fetched by name, and wheels the target does not need are
dropped. ``install.sh`` then installs exactly these files (``--no-index --no-deps``), so the
device never evaluates a marker or reaches a network.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from edge_agent.errors import VigilInputError

PYPI_ONLY_NOTE = "pip download needs network access to PyPI (or --find-links DIR with the wheels)"


@dataclass(frozen=True)
class OsRelease:
    name: str
    glibc: tuple[int, int]


@dataclass(frozen=True)
class Target:
    """A device family: its CPU (``platform.machine()``) and the OS releases per Python version."""

    name: str
    machine: str
    releases: dict[str, OsRelease]
    # Where the wheels PyPI lacks for this CPU come from (piwheels builds for Raspberry Pi OS).
    extra_index_urls: tuple[str, ...] = ()
    # Python versions the CPU has no TFLite interpreter for, and what to use instead.
    no_interpreter: dict[str, str] | None = None
    # What to run instead when a Python version has no OS release here.
    advice: str = ""


BOOKWORM = OsRelease("Raspberry Pi OS / Debian 12 bookworm", (2, 36))
TRIXIE = OsRelease("Raspberry Pi OS / Debian 13 trixie", (2, 41))
TARGETS: dict[str, Target] = {
    "rpi64": Target("rpi64", "aarch64", {"3.11": BOOKWORM, "3.13": TRIXIE}),
    "rpi32": Target(
        "rpi32", "armv7l", {"3.11": BOOKWORM, "3.13": TRIXIE},
        extra_index_urls=("https://www.piwheels.org/simple",),
        no_interpreter={"3.13": "no TFLite interpreter exists for 32-bit ARM (armv7l) with Python 3.13 "
                                "(tflite-runtime 2.14 stops at Python 3.11, ai-edge-litert has no 32-bit ARM "
                                "wheels): use 32-bit Raspberry Pi OS bookworm (Python 3.11, --python 3.11) "
                                "or the 64-bit OS (--target rpi64)"},
    ),
    # A Linux gateway PC (Debian/Ubuntu family).
    "x86_64": Target("x86_64", "x86_64", {"3.11": BOOKWORM, "3.13": TRIXIE}),
}
DEFAULT_PYTHON = "3.11"


def get_target(name: str, python: str) -> tuple[Target, OsRelease]:
    """The target and OS release; a combination that cannot run the agent is a one-line error."""
    if name not in TARGETS:
        raise VigilInputError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}", key="--target")
    target = TARGETS[name]
    if target.no_interpreter and python in target.no_interpreter:
        raise VigilInputError(target.no_interpreter[python], key="--python")
    if python not in target.releases:
        raise VigilInputError(f"no wheelhouse for Python {python} on {name}; choose "
                              f"{' or '.join(target.releases)}", key="--python")
    return target, target.releases[python]


def platform_tags(machine: str, glibc: tuple[int, int]) -> list[str]:
    """Every platform tag a glibc of this version accepts, newest first (pip takes them literally)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    tags += [f"manylinux2014_{machine}", f"linux_{machine}"]
    if machine == "x86_64":
        tags[-1:-1] = ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def python_tags(python: str) -> list[Tag]:
    nodot = python.replace(".", "")
    return [Tag(f"cp{nodot}", abi, "") for abi in (f"cp{nodot}", "abi3", "none")]


def marker_environment(machine: str, python: str) -> dict[str, str]:
    """The values a CPython on a Linux device of this CPU gives its environment markers."""
    return {
        "implementation_name": "cpython", "implementation_version": f"{python}.0", "os_name": "posix",
        "platform_machine": machine, "platform_release": "", "platform_system": "Linux",
        "platform_version": "", "python_full_version": f"{python}.0", "platform_python_implementation": "CPython",
        "python_version": python, "sys_platform": "linux",
    }


def wheel_fits(filename: str, machine: str, glibc: tuple[int, int], python: str) -> bool:
    """True if a wheel of this file name installs on the target (pure, abi3 or this CPython)."""
    platforms = set(platform_tags(machine, glibc)) | {"any"}
    nodot = python.replace(".", "")
    major = python.split(".")[0]
    _name, _ver, _build, tags = parse_wheel_filename(filename)
    for tag in tags:
        interp_ok = tag.interpreter in {f"cp{nodot}", f"py{major}", f"py{nodot}", "py3"} or (
            tag.abi == "abi3" and re.fullmatch(r"cp3\d+", tag.interpreter) is not None
            and int(tag.interpreter[3:]) <= int(nodot[1:]))
        abi_ok = tag.abi in {f"cp{nodot}", "abi3", "none"}
        if interp_ok and abi_ok and tag.platform in platforms:
            return True
    return False


def target_requirements(requirements: list[str], extras: set[str], env: dict[str, str]) -> list[Requirement]:
    """The requirements (``Requires-Dist`` lines) that apply on the target with these extras."""
    out = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
            out.append(req)
    return out


def bare(req: Requirement) -> str:
    """The requirement without its marker (already evaluated for the target; pip would use this machine's)."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def _wheel_metadata(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        meta = Parser().parsestr(archive.read(name).decode("utf-8"))
    return list(meta.get_all("Requires-Dist") or [])


def closure(roots: list[Requirement], folder: Path, env: dict[str, str]) -> tuple[set[Path], list[Requirement]]:
    """(wheels the roots need, requirements no wheel in ``folder`` satisfies), walking the wheels' metadata."""
    wheels: dict[str, tuple[Path, str]] = {}
    for path in folder.glob("*.whl"):
        name, version, _b, _t = parse_wheel_filename(path.name)
        wheels[canonicalize_name(name)] = (path, str(version))
    needed: set[Path] = set()
    missing: list[Requirement] = []
    todo = list(roots)
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        found = wheels.get(key[0])
        if found is None or not req.specifier.contains(found[1], prereleases=True):
            missing.append(req)
            continue
        needed.add(found[0])
        if key in seen:
            continue
        seen.add(key)
        todo.extend(target_requirements(_wheel_metadata(found[0]), set(req.extras), env))
    return needed, missing


def _pip_download(args: list[str], where: str, target: Target) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                           "--progress-bar", "off", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")] or proc.stderr.splitlines()[-1:]
        note = PYPI_ONLY_NOTE
        if target.extra_index_urls:
            note += f"; PyPI has no {target.machine} wheels of numpy, pynacl and cffi: pip takes them from " + \
                    " and ".join(target.extra_index_urls) + ", which must be reachable too"
        raise VigilInputError(f"pip download for {where} failed: {errors[0] if errors else 'no output'} ({note})",
                              key="--target")


def build_wheelhouse(project_requirements: list[str], target_name: str, python: str, folder: Path, *,
                     find_links: list[Path] | None = None) -> list[Path]:
    """Download the ``[edge]`` closure for the target into ``folder``; returns the wheel files kept."""
    target, release = get_target(target_name, python)
    env = marker_environment(target.machine, python)
    roots = target_requirements(project_requirements, {"edge"}, env)
    where = f"{target.name} ({target.machine}, Python {python}, {release.name})"
    folder.mkdir(parents=True, exist_ok=True)
    common = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
              *[a for tag in python_tags(python) for a in ("--abi", tag.abi)],
              *[a for tag in platform_tags(target.machine, release.glibc) for a in ("--platform", tag)],
              *[a for url in target.extra_index_urls for a in ("--extra-index-url", url)],
              *[a for d in find_links or [] for a in ("--find-links", str(d))], "-d", str(folder)]
    _pip_download([*common, *[bare(r) for r in roots]], where, target)
    needed, missing = closure(roots, folder, env)
    if missing:  # pip evaluated a marker for this machine, not the target: fetch those by name
        _pip_download([*common, "--no-deps", *sorted({bare(r) for r in missing})], where, target)
        needed, missing = closure(roots, folder, env)
    if missing:
        raise VigilInputError(f"no wheel for {', '.join(sorted({bare(r) for r in missing}))} on {where}",
                              key="--target")
    for path in folder.glob("*.whl"):
        if path not in needed:
            path.unlink()
        elif not wheel_fits(path.name, target.machine, release.glibc, python):
            raise VigilInputError(f"{path.name} does not install on {where}", key="--target")
    return sorted(needed)
