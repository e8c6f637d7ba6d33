"""Test seam for sweeps whose jobs run in other processes (Hydra's joblib and Ray launchers):
with ``PYTHONPATH=tests/fake_site:tests`` and ``UPLIFT_TEST_FAKE_SAMPLER=1``, every Python
process of a test's subprocess tree starts with the fake sampler of tests/fast_tier.py
installed, as the ``fake_sampler`` fixture does in the test's own process. Python imports
``sitecustomize`` at start-up from the path; without the variable this does nothing."""

import os

if os.environ.get("UPLIFT_TEST_FAKE_SAMPLER") == "1":
    import pytest

    import fast_tier

    fast_tier.install(pytest.MonkeyPatch())
