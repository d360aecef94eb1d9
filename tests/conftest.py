import os

import numpy as np
import pytest

# Deterministic, CI-sized hypothesis runs.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "fastinfo",
        deadline=None,
        max_examples=60,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastinfo"))
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
