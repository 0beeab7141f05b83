"""The TCP_NODELAY shim: ``_nodelay.c``, compiled at run time for ``LD_PRELOAD``."""

from __future__ import annotations

import os
import shutil
import subprocess

from ._process import ServerNotFound


def build_nodelay_preload(directory: str | os.PathLike[str]) -> str:
    """Compile the TCP_NODELAY shim (``_nodelay.c``, next to this module) into
    *directory*; return the path of the shared object, for ``LD_PRELOAD``.

    Every connection a process accepts with the shim preloaded has ``TCP_NODELAY`` set,
    which unbound 1.17 offers no option for on DoT. Raises :class:`ServerNotFound`
    when there is no C compiler (``$CC``, ``cc`` or ``gcc``) or it fails."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_nodelay.c")
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise ServerNotFound("no C compiler (cc, gcc or $CC) to build the TCP_NODELAY shim")
    target = os.path.join(os.fspath(directory), "libdotclient_nodelay.so")
    try:
        done = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", target, source, "-ldl"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise ServerNotFound(f"building the TCP_NODELAY shim failed: {exc}") from exc
    if done.returncode:
        raise ServerNotFound(f"building the TCP_NODELAY shim failed:\n{done.stderr}")
    return target
