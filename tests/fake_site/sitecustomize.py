"""Test seam for sweeps whose jobs run in other processes (Hydra's joblib and Ray launchers):
with ``PYTHONPATH=tests/fake_site:tests`` and ``UPLIFT_TEST_FAKE_SAMPLER=1``, every Python
process of a test's subprocess tree that imports ``uplift.models.sampling`` gets the fake
sampler of tests/fast_tier.py installed right after, as the ``fake_sampler`` fixture does in the
test's own process. Python imports ``sitecustomize`` at start-up from the path; processes that
never load uplift (a launcher's helpers) pay nothing, and without the variable this does
nothing."""

import importlib.abc
import importlib.util
import os
import sys

TARGET = "uplift.models.sampling"


class _InstallFakeSampler(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of :data:`TARGET` so that the fake sampler
    is installed once the module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)  # once, and without finding itself again
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            import pytest

            import fast_tier

            fast_tier.install(pytest.MonkeyPatch())

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("UPLIFT_TEST_FAKE_SAMPLER") == "1":
    sys.meta_path.insert(0, _InstallFakeSampler())
