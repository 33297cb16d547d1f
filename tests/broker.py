"""A real mosquitto for tests: free port, optional password file and TLS (mTLS).

``MosquittoBroker(workdir, users={...}, tls=True, require_client_cert=True,
persistence=False, acl=None)``: ``start()`` / ``stop()`` / ``restart()`` keep the same
ports; ``start`` returns once the port accepts connections. TLS material (CA,
server cert for 127.0.0.1/localhost, client cert) is made with the openssl CLI
in ``workdir/tls``. Broker tests never skip: without mosquitto the
``broker`` fixture FAILS with an install hint (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
_MISSING = ("mosquitto not found: install it (apt-get install mosquitto) - "
            "broker tests need a real broker and never skip")


def mosquitto_path() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


def mosquitto_available() -> bool:
    return mosquitto_path() is not None and shutil.which("mosquitto_passwd") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def make_tls_files(folder: Path) -> TlsFiles:
    """CA + server cert (SAN 127.0.0.1, localhost) + client cert, EC P-256, valid 2 days."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=vigil test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    leafs = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, ext in leafs.items():
        (folder / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" + ext
        )
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=vigil-test-{name}",
                 cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)
    return TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key",
                    folder / "client.crt", folder / "client.key")


class MosquittoBroker:
    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        require_client_cert: bool = False,
        persistence: bool = False,
        acl: str | None = None,
    ) -> None:
        binary = mosquitto_path()
        if binary is None:
            raise RuntimeError(_MISSING)
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls_files = make_tls_files(self.workdir / "tls") if tls else None
        self.log_path = self.workdir / "mosquitto.log"
        self.conf_path = self.workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config(users, require_client_cert, persistence, acl)

    def _write_config(
        self, users: dict[str, str] | None, require_client_cert: bool, persistence: bool, acl: str | None
    ) -> None:
        lines = [f"persistence {'true' if persistence else 'false'}", f"log_dest file {self.log_path}", "log_type all"]
        if persistence:
            lines += [f"persistence_location {self.workdir}/", "autosave_interval 0"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to 'mosquitto', which cannot read our temp dir
        if users:
            pw_file = self.workdir / "passwords"
            for i, (name, password) in enumerate(users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run(["mosquitto_passwd", *flags, str(pw_file), name, password],
                               check=True, capture_output=True)
            lines += [f"password_file {pw_file}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:  # mosquitto acl_file text; rules before any "user" line apply to anonymous clients
            acl_file = self.workdir / "acl"
            acl_file.write_text(acl.strip() + "\n")
            lines.append(f"acl_file {acl_file}")
        lines.append(f"listener {self.port} {self.host}")
        if self.tls_files is not None:
            t = self.tls_files
            lines += [f"listener {self.tls_port} {self.host}", f"cafile {t.ca_cert}",
                      f"certfile {t.server_cert}", f"keyfile {t.server_key}"]
            if require_client_cert:
                lines.append("require_certificate true")
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        if self.running:
            return self
        self._proc = subprocess.Popen([self.binary, "-c", str(self.conf_path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        while not all(port_open(p) for p in ports):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {err.strip()} {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {ports} within {timeout} s: {self.log_tail()}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves persistence on it), then wait until the port is free."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def restart(self) -> MosquittoBroker:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def require_mosquitto() -> None:
    if not mosquitto_available():
        pytest.fail(_MISSING, pytrace=False)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A started anonymous mosquitto on a free 127.0.0.1 port; stopped afterwards."""
    require_mosquitto()
    b = MosquittoBroker(tmp_path / "mosquitto")
    b.start()
    try:
        yield b
    finally:
        b.stop()
