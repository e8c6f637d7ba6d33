"""uplift: Bayesian uplift models and constrained decisions for customer development.

Pipeline: data -> models -> value -> optimize -> report. Each stage takes typed objects;
the Hydra entry point (:mod:`uplift.cli`) is the only place that sees raw configuration.
"""

from uplift.tactics import Arm, ArmMap, Tactic

__all__ = ["Arm", "ArmMap", "Tactic", "__version__", "compose_config", "load_run", "run"]
__version__ = "0.1.0"


def compose_config(overrides: list[str] | tuple[str, ...] = ()):
    """Typed run configuration from ``conf/`` plus Hydra-style overrides (see :mod:`uplift.cli`)."""
    from uplift.cli import compose_config as _compose

    return _compose(overrides)


def run(config, output_dir):
    """Run the whole pipeline (see :func:`uplift.pipeline.run`)."""
    from uplift.pipeline import run as _run

    return _run(config, output_dir)


def load_run(folder, config=None):
    """A finished run loaded back, to re-plan without refitting (see :mod:`uplift.runs`)."""
    from uplift.runs import load_run as _load

    return _load(folder, config)
