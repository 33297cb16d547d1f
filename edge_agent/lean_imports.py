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

paho's socket code also names ``ssl.SSLWantReadError`` / ``ssl.SSLWantWriteError`` in the
``except`` clauses of every recv and send, so a plain socket that raises (a broker reset during an
outage) used to load OpenSSL just to evaluate them (~+4 MB in 1 of 4 outage runs). Until ssl's code
has run no SSL socket exists, so no SSL exception can be raised: while ssl is deferred those names,
looked up by paho, answer with stand-in exception classes that nothing raises (:data:`STANDINS`);
any other attribute, such as the ``SSLContext`` a TLS config builds, runs the real module, and from
then on the names are ssl's own.

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
# Exception names that paho's code on plain sockets only mentions in ``except`` clauses (see the module
# doc). Only paho's own look-ups get stand-ins: other code may keep what it reads (asyncio.sslproto
# builds a tuple of ssl's exception classes at import time), and must get the real classes.
STANDINS: dict[str, tuple[str, ...]] = {"ssl": ("SSLWantReadError", "SSLWantWriteError")}
STANDIN_CALLERS = ("paho.",)
_STANDIN_CLASSES: dict[tuple[str, str], type[Exception]] = {}


def _standin(module: str, name: str) -> type[Exception]:
    key = (module, name)
    if key not in _STANDIN_CLASSES:
        doc = f"Stands in for {module}.{name} while {module} is not loaded: nothing raises it."
        _STANDIN_CLASSES[key] = type(name, (Exception,), {"__doc__": doc, "__module__": __name__})
    return _STANDIN_CLASSES[key]


def _called_from(prefixes: tuple[str, ...]) -> bool:
    """Whether the attribute look-up comes from code of a module named with one of ``prefixes``."""
    caller = sys._getframe(2).f_globals.get("__name__", "")  # 0: here, 1: __getattribute__, 2: the caller
    return isinstance(caller, str) and caller.startswith(prefixes)


class _DeferredModule(types.ModuleType):
    """A module in ``sys.modules`` whose code runs on the first attribute access (see the module doc)."""

    def __getattribute__(self, name: str) -> Any:
        if name in _PASSTHROUGH:
            return types.ModuleType.__getattribute__(self, name)
        module_name = types.ModuleType.__getattribute__(self, "__name__")
        if name in STANDINS.get(module_name, ()) and _called_from(STANDIN_CALLERS):
            return _standin(module_name, name)
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
