"""`TIKFLOW_<PROVIDER>_QUEUE_RPS` also paces each worker's own requests (see `bench/ratelimit.py`)."""

from __future__ import annotations

import pytest

from activities.config import EngineConfig
from activities.ratelimit import Quota, RateLimiter
from tikflow.worker import build_services, provider_quotas


def test_queue_rps_becomes_an_even_spacing_per_provider():
    quotas = provider_quotas(
        EngineConfig.from_env({"TIKFLOW_TIKAPI_QUEUE_RPS": "10", "TIKFLOW_TIKTOK_QUEUE_RPS": "0.5"})
    )
    assert quotas == {"tikapi": Quota(1, 0.1), "tiktok": Quota(1, 2.0)}
    unset = EngineConfig.from_env({"TIKFLOW_TIKAPI_QUEUE_RPS": "", "TIKFLOW_DUMPLING_QUEUE_RPS": "0"})
    assert provider_quotas(unset) == {}


async def test_the_worker_services_space_requests_at_the_queue_rate():
    services = build_services(EngineConfig.from_env({"TIKFLOW_TIKAPI_QUEUE_RPS": "4"}))
    try:
        limiter = services.limiter
        assert isinstance(limiter, RateLimiter)
        await limiter.acquire("tikapi", "main")
        assert limiter.wait_time("tikapi", "main") == pytest.approx(0.25, abs=0.05)
        assert limiter.wait_time("tiktok", "main") == 0
    finally:
        await services.http.aclose()
