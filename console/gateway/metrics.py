"""This gateway process's metrics: read from the counters the gateway keeps
anyway (``Gateway.stats``, ``delivered``, its sessions and write buffers) when
Prometheus scrapes, served by the exporter of console/metrics/exporter.py on
``GATEWAY_METRICS_BIND``. Nothing is counted twice and the hot paths only
bump plain integers."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from console.metrics.exporter import Exporter


class GatewayCollector(Collector):
    def __init__(self, gateway):
        self.gateway = gateway

    def describe(self):
        return []

    def collect(self):
        gw = self.gateway
        instance = ["gateway"]
        value = [gw.instance_id]

        def gauge(name, doc, v):
            g = GaugeMetricFamily(name, doc, labels=instance)
            g.add_metric(value, v)
            return g

        def counter(name, doc, v):
            c = CounterMetricFamily(name, doc, labels=instance)
            c.add_metric(value, v)
            return c

        yield gauge(
            "cairn_gateway_streams_held", "Agent streams this gateway holds now", len(gw.sessions)
        )
        yield counter(
            "cairn_gateway_streams_opened", "Agent streams opened", gw.stats["streams_opened"]
        )
        yield counter(
            "cairn_gateway_heartbeats_ingested", "Heartbeats received", gw.stats["heartbeats"]
        )
        yield counter(
            "cairn_gateway_reports_received",
            "Reports received on streams (progress, events, results)",
            gw.stats["reports"],
        )
        yield counter(
            "cairn_gateway_reports_written",
            "Job events and results written to the database (progress is batched apart)",
            gw.stats["reports_written"],
        )
        delivered = CounterMetricFamily(
            "cairn_gateway_command_deliveries",
            "Commands written to agent streams, by kind (policy_push: a policy sent without a command)",
            labels=["gateway", "kind"],
        )
        for kind, n in sorted(dict(gw.delivered).items()):  # a copy: the loop may add kinds
            delivered.add_metric([gw.instance_id, kind], n)
        yield delivered
        yield gauge(
            "cairn_gateway_pending_writes",
            "Heartbeats, acknowledgements and deliveries buffered for the next batch",
            len(gw.heartbeats) + len(gw.acks) + len(gw.to_deliver),
        )


def start_exporter(gateway, bind: str) -> Exporter:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gateway))
    try:
        return Exporter(bind, registry).start()
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot serve metrics on {bind}: {exc}") from exc
