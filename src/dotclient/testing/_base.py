"""What every test server offers, process or in-process proxy: ``host`` and ``port``,
``address``, ``running``, ``start()``/``stop()``, a ``with`` block and a short repr."""

from __future__ import annotations

from typing import TypeVar

from ._net import hostport

_S = TypeVar("_S", bound="LoopbackServer")


class LoopbackServer:
    """The base of the test servers: a server on a loopback ``host`` and ``port``.

    A subclass sets ``host`` and ``port`` and gives :attr:`running`, :meth:`start` and
    :meth:`stop`; the ``with`` statement starts the server and stops it at the end.
    """

    host: str
    port: int

    @property
    def address(self) -> str:
        """The address the server listens on (``host``)."""
        return self.host

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the server."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server; does nothing if it is not running."""
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self._hostport()}{self._repr_details()} {state}>"

    def _hostport(self) -> str:
        return hostport(self.host, self.port)

    def _repr_details(self) -> str:
        """What the repr shows between the address and the state (with a leading space)."""
        return ""
