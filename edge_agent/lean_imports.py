"""Keep OpenSSL and urllib's HTTP stack out of the agent process until something really uses them.

paho-mqtt imports ``ssl`` and ``urllib.request`` at import time, and numpy.random
(through ``secrets`` -> ``hmac``) and the bundle checksum import ``hashlib``.
On a plain-TCP device none of them needs OpenSSL, yet together they map
libcrypto + libssl and ``urllib.request`` drags in ``http.client``, ``email``
and ``tempfile``: about 6 MB of the agent's ~59 MB resident set
(benchmarks/notes/footprint.md). :func:`install` (called by the ``vigil agent
run`` launcher before anything else is imported) does two things:

- ``ssl`` and ``urllib.request`` become *deferred* modules: ``import ssl``
  succeeds at once and the module's code runs on the first attribute access
  (paho reaches ``ssl.*`` only for TLS or when a socket call raises, and
  ``urllib.request`` only to look up a proxy when PySocks is installed). A
  config with ``[mqtt.tls]`` loads ssl at the first connect, as before.
- ``hashlib`` uses CPython's built-in SHA-2/SHA-1/MD5/BLAKE2 instead of
  OpenSSL's (``_hashlib`` is marked absent, the fallback hashlib itself
  supports): same digests, no libcrypto just to hash a 100 kB bundle. With TLS
  configured, ssl maps libcrypto for the connection and hashlib still uses the
  built-in hashes: one behaviour whatever the config.

Why not :class:`importlib.util.LazyLoader`: on CPython 3.11 its first access
is not thread-safe (a second thread can see the half-run module; fixed in
3.12), and paho's network threads are exactly where ``ssl`` is first touched.
:class:`_DeferredModule` runs the module's code under a lock, and answers the
import system's own ``__spec__``/``__name__`` look-ups without loading.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

DEFERRED = ("ssl", "urllib.request")
OPENSSL_HASHES = "_hashlib"
# Attributes the import system reads on every ``import x`` of a module in sys.modules.
_PASSTHROUGH = frozenset({"__spec__", "__name__", "__loader__", "__dict__", "__class__", "_deferred_loading"})
_LOCK = threading.RLock()


class _DeferredModule(types.ModuleType):
    """A module in ``sys.modules`` whose code runs on the first attribute access (see the module doc)."""

    def __getattribute__(self, name: str) -> Any:
        if name in _PASSTHROUGH:
            return types.ModuleType.__getattribute__(self, name)
        with _LOCK:  # another thread waits here until the code has run
            if type(self) is _DeferredModule:
                namespace = types.ModuleType.__getattribute__(self, "__dict__")
                if not namespace.get("_deferred_loading"):  # not a re-entry from the module's own code
                    _run(self, namespace)
        return types.ModuleType.__getattribute__(self, name)


def _run(module: types.ModuleType, namespace: dict[str, Any]) -> None:
    namespace["_deferred_loading"] = True
    try:
        spec = namespace["__spec__"]
        spec.loader.exec_module(module)
        module.__class__ = types.ModuleType
    finally:
        namespace.pop("_deferred_loading", None)


def defer(name: str) -> bool:
    """Put a deferred ``name`` in ``sys.modules`` (False when already imported or not found)."""
    if name in sys.modules:
        return False
    parent_name, _, child = name.rpartition(".")
    parent = importlib.import_module(parent_name) if parent_name else None
    spec = importlib.util.find_spec(name)
    if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
        return False
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    sys.modules[name] = module
    if parent is not None:
        setattr(parent, child, module)
    return True


def is_deferred(name: str) -> bool:
    """True while ``name`` is in ``sys.modules`` and its code has not run yet."""
    return type(sys.modules.get(name)) is _DeferredModule


def install() -> None:
    """Defer :data:`DEFERRED` and keep OpenSSL's hashes out (see the module doc); call it first."""
    if OPENSSL_HASHES not in sys.modules and "hashlib" not in sys.modules:
        sys.modules[OPENSSL_HASHES] = None  # type: ignore[assignment]  # import raises ImportError: the fallback
    for name in DEFERRED:
        defer(name)
