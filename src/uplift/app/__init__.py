"""Conductors of the verbs other than the main run (``uplift design``, ``uplift clv``, the
held-out evaluation) and the typed run summary.

Only this layer (with :mod:`uplift.pipeline`, :mod:`uplift.inputs` and :mod:`uplift.cli` above the
libraries) reads :class:`~uplift.config.AppConfig`: the libraries below (data, models, value,
optimize, experiment, evaluate, report) take typed arguments. ``tests/test_layering.py`` enforces
it.
"""
