"""uplift: Bayesian uplift models and constrained decisions for customer development.

Pipeline: data -> models -> value -> optimize -> report. Each stage takes typed objects;
the Hydra entry point (:mod:`uplift.cli`) is the only place that sees raw configuration.
"""

from uplift.tactics import Arm, ArmMap, Tactic

__all__ = ["Arm", "ArmMap", "Tactic", "__version__"]
__version__ = "0.1.0"
