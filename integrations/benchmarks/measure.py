"""Timing helpers shared by the page benches (`manage.py bench exceptions`, `bench dashboards`):
a p95, and the interleaved p95/median of several URLs through the Django test client."""

from __future__ import annotations

import gc
import statistics
import time

from django.test import Client

WARMUP = 5
ROUNDS = 3


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def timed(client: Client, urls: dict[str, tuple[str, dict[str, str]]], samples: int) -> dict:
    """The p95 (the median of ROUNDS rounds' p95s, as the other figures of this machine are
    medians of 3 runs) and the median ms of each URL. Within a round the requests are
    interleaved, so a burst of background work falls on every figure alike."""
    for _ in range(WARMUP):
        for url, headers in urls.values():
            client.get(url, **headers)
    round_p95s: dict[str, list[float]] = {name: [] for name in urls}
    every: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(ROUNDS):
        gc.collect()
        times: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(samples):
            for name, (url, headers) in urls.items():
                t0 = time.perf_counter()
                response = client.get(url, **headers)
                times[name].append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {url} answered {response.status_code}")
        for name, values in times.items():
            round_p95s[name].append(p95(values))
            every[name] += values
    return {
        name: {"p95": statistics.median(round_p95s[name]), "median": statistics.median(every[name])}
        for name in urls
    }
