"""Prometheus metrics of the service (prometheus-client), in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
                   2.5)


class ServiceMetrics:
    """Requests (count and latency by route and status), pipeline stage latency, fallbacks,
    degraded responses, events and item upserts, event-log commits."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("tastemaker_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram("tastemaker_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("tastemaker_pipeline_stage_seconds", "time spent in each pipeline stage", ["stage"],
                               buckets=LATENCY_BUCKETS, registry=r)
        self.fallbacks = Counter("tastemaker_fallback_responses", "responses answered by a fallback", ["reason"],
                                 registry=r)
        self.degraded = Counter("tastemaker_degraded_responses", "responses served while a backend was unreachable",
                                registry=r)
        self.events = Counter("tastemaker_events", "events received", ["type", "status"], registry=r)
        self.items = Counter("tastemaker_item_upserts", "item upserts", ["created"], registry=r)
        self.commit = Histogram("tastemaker_event_log_commit_seconds", "event-log group commit (write + fsync)",
                                buckets=LATENCY_BUCKETS, registry=r)
        self.commit_size = Histogram("tastemaker_event_log_commit_records", "records per event-log commit",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096), registry=r)
        self.store_up = Gauge("tastemaker_store_up", "1 while the feature store answers, 0 in degraded mode",
                              registry=r)
        self.store_up.set(1)

    def on_commit(self, records: int, seconds: float) -> None:
        self.commit.observe(seconds)
        self.commit_size.observe(records)

    def render(self) -> bytes:
        return generate_latest(self.registry)
