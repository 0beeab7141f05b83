"""Prometheus metrics of ``dotclient serve`` (``--metrics ADDR:PORT``).

Needs ``prometheus-client`` (``pip install 'dotclient[serve]'``); it is imported only
when metrics are asked for. Each stub has its own registry, so several can run in one
process (the tests do).
"""

from __future__ import annotations

from typing import Any

__all__ = ["NAMES", "Metrics", "PROMETHEUS_MISSING"]

PROMETHEUS_MISSING = (
    "--metrics needs the 'prometheus-client' package: pip install 'dotclient[serve]'"
)

#: Every metric name, as scraped (counters carry a ``_total`` suffix).
NAMES = (
    "dotclient_serve_queries_total",
    "dotclient_serve_responses_total",
    "dotclient_serve_cache_hits_total",
    "dotclient_serve_cache_misses_total",
    "dotclient_serve_upstream_latency_seconds",
    "dotclient_serve_upstream_failures_total",
    "dotclient_serve_in_flight",
    "dotclient_serve_refused_total",
    "dotclient_serve_malformed_total",
)

# Upstream DoT latencies: from a cached TLS connection on loopback to a slow resolver.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The stub's counters, in a registry of their own (``prometheus_client`` must be
    importable: check with :func:`importlib.util.find_spec` first)."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self._prom = prom
        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        self.queries = prom.Counter(
            "dotclient_serve_queries",
            "Queries received, by transport",
            ["transport"],
            registry=registry,
        )
        self.responses = prom.Counter(
            "dotclient_serve_responses",
            "Responses sent, by RCODE",
            ["rcode"],
            registry=registry,
        )
        self.cache_hits = prom.Counter(
            "dotclient_serve_cache_hits", "Queries answered from the cache", registry=registry
        )
        self.cache_misses = prom.Counter(
            "dotclient_serve_cache_misses",
            "Queries forwarded upstream (the cache had no live answer, or is off)",
            registry=registry,
        )
        self.latency = prom.Histogram(
            "dotclient_serve_upstream_latency_seconds",
            "Time for an upstream DoT answer, failover and resends included",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.failures = prom.Counter(
            "dotclient_serve_upstream_failures",
            "Times an upstream server was marked failed (connect, TLS, timeout, protocol)",
            ["server"],
            registry=registry,
        )
        self.in_flight = prom.Gauge(
            "dotclient_serve_in_flight",
            "Queries waiting for an upstream answer",
            registry=registry,
        )
        self.refused = prom.Counter(
            "dotclient_serve_refused",
            "Queries refused because of their source address",
            registry=registry,
        )
        self.malformed = prom.Counter(
            "dotclient_serve_malformed",
            "Messages answered FORMERR, NOTIMP or BADVERS, or dropped as unreadable",
            registry=registry,
        )
        self._server: Any = None
        self._thread: Any = None

    def start(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP on ``host:port`` in a thread; return the port."""
        server, thread = self._prom.start_http_server(port, host, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def text(self) -> str:
        """The metrics as Prometheus text (what a scrape returns)."""
        data: bytes = self._prom.generate_latest(self.registry)
        return data.decode()

    def stop(self) -> None:
        """Stop the HTTP server, if started."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
