"""The likelihood families, one module each, and the registry every stage looks them up in.

A family's name appears nowhere else in the library: configuration validation, model building,
the parameterization choice, predictive checks, held-out scoring and calibration studies all go
through :func:`get_family` (``tests/test_family_registry.py`` enforces it). Adding a family is a
module here plus one line in :data:`FAMILIES` (README, "Extending: a new likelihood family").

Import-light: no PyMC until a model is built.
"""

from __future__ import annotations

from uplift.models.families import binomial, hurdle_lognormal, negative_binomial, price_logit
from uplift.models.families.base import Family, ModelInputs

#: every family by name, in the order studies and error messages list them
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        binomial.FAMILY,
        hurdle_lognormal.FAMILY,
        negative_binomial.FAMILY,
        price_logit.FAMILY,
    )
}
#: the family of a tactic that ``model.family`` / ``model.families`` leave unset
DEFAULT_FAMILY = binomial.NAME
#: the family that models each kind of outcome a data source declares (the synthetic
#: generator's per_tactic outcomes, ``uplift.data.settings.TACTIC_OUTCOMES``)
OUTCOME_FAMILIES: dict[str, str] = {
    "conversion": binomial.NAME,
    "orders": negative_binomial.NAME,
    "revenue": hurdle_lognormal.NAME,
    "price": price_logit.NAME,
}
#: the family that models each tactic's own outcome (``uplift.tactics.TACTIC_VALUES`` says
#: which outcome and what a unit of it is worth); keyed by tactic name so this stays a leaf
NATIVE_FAMILIES: dict[str, str] = {
    "cross_sell": negative_binomial.NAME,
    "up_sell": hurdle_lognormal.NAME,
    "frequency": negative_binomial.NAME,
    "margin": price_logit.NAME,
    "retention": binomial.NAME,
    "referral": negative_binomial.NAME,
    "cost_to_serve": binomial.NAME,
}


class UnknownFamilyError(ValueError):
    """A likelihood family name that is not registered."""


def get_family(name: str) -> Family:
    """The registered family called ``name``; :class:`UnknownFamilyError` (a ValueError) naming
    the known families otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise UnknownFamilyError(
            f"unknown likelihood family {name!r}; known families: {sorted(FAMILIES)}"
        ) from None


__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "NATIVE_FAMILIES",
    "OUTCOME_FAMILIES",
    "Family",
    "ModelInputs",
    "UnknownFamilyError",
    "get_family",
]
