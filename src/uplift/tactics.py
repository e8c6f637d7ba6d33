"""Customer-development tactics and the arms of an experiment that deliver them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Tactic(StrEnum):
    """What an arm does to a customer. ``CONTROL`` is the untreated reference."""

    CONTROL = "control"
    CROSS_SELL = "cross_sell"
    UP_SELL = "up_sell"
    FREQUENCY = "frequency"
    MARGIN = "margin"
    RETENTION = "retention"
    REFERRAL = "referral"
    #: lowers what serving the customer costs (e.g. a move to a cheaper channel); its benefit is
    #: the cost saved (``uplift.value.tactic_value``)
    COST_TO_SERVE = "cost_to_serve"

    @classmethod
    def parse(cls, value: str, *, where: str = "tactic") -> Tactic:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise ValueError(f"{where}: unknown tactic {value!r}; use one of: {allowed}") from None


@dataclass(frozen=True)
class Arm:
    """One experiment arm: its name in the data, the tactic it delivers, its cost per treated customer."""

    name: str
    tactic: Tactic
    cost: float = 0.0

    @property
    def is_control(self) -> bool:
        return self.tactic is Tactic.CONTROL


@dataclass(frozen=True)
class ArmMap:
    """The experiment's arms. Exactly one control arm; any number of arms per tactic (variants)."""

    arms: tuple[Arm, ...]

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"tactics.arms: arm names must be unique, got {names}")
        controls = [a.name for a in self.arms if a.is_control]
        if len(controls) != 1:
            raise ValueError(
                "tactics.arms: exactly one arm must map to tactic 'control' "
                f"(found {len(controls)}: {controls}); set tactic: control on the untreated arm"
            )
        if not any(not a.is_control for a in self.arms):
            raise ValueError(
                "tactics.arms: at least one treated arm (a non-control tactic) is needed"
            )
        for a in self.arms:
            if a.cost < 0:
                raise ValueError(f"tactics.arms.{a.name}.cost: must be >= 0, got {a.cost}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Mapping[str, Any]]) -> ArmMap:
        """Build from ``{arm_name: {"tactic": ..., "cost": ...}}`` as written in config."""
        arms = []
        for name, spec in mapping.items():
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"tactics.arms.{name}: expected {{tactic: ..., cost: ...}}, got {spec!r}"
                )
            tactic = Tactic.parse(str(spec.get("tactic", "")), where=f"tactics.arms.{name}.tactic")
            raw = spec.get("cost", 0.0)
            try:
                cost = float(raw or 0.0)
            except (TypeError, ValueError):
                raise ValueError(
                    f"tactics.arms.{name}.cost={raw!r} is not a number: give the cost per "
                    f"treated customer, e.g. tactics.arms.{name}.cost=0.5"
                ) from None
            arms.append(Arm(name=str(name), tactic=tactic, cost=cost))
        return cls(tuple(arms))

    @property
    def control(self) -> Arm:
        return next(a for a in self.arms if a.is_control)

    @property
    def treated(self) -> tuple[Arm, ...]:
        return tuple(a for a in self.arms if not a.is_control)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    def __getitem__(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def tactics(self) -> tuple[Tactic, ...]:
        """Treated tactics in first-seen order."""
        seen: dict[Tactic, None] = {}
        for a in self.treated:
            seen.setdefault(a.tactic, None)
        return tuple(seen)

    def arms_for(self, tactic: Tactic) -> tuple[Arm, ...]:
        return tuple(a for a in self.treated if a.tactic is tactic)

    def restrict(self, names: Iterable[str]) -> ArmMap:
        keep = set(names)
        return ArmMap(tuple(a for a in self.arms if a.name in keep or a.is_control))


# ---- what one unit of each tactic's own outcome is worth (uplift.value.tactic_value) ------


@dataclass(frozen=True)
class TacticValueRule:
    """One row of the tactic table.

    ``outcome``: the data column the tactic moves (``data.columns.<outcome>``; the family that
    models it natively is ``uplift.models.families.NATIVE_FAMILIES[tactic]``, this module being a
    leaf); ``unit`` one unit of it; ``value`` the value of one unit in words; ``keys`` the
    inputs of the rule a user may set under ``value.tactics.<tactic>``.
    """

    tactic: Tactic
    outcome: str
    unit: str
    value: str
    keys: tuple[str, ...]


#: every key under ``value.tactics.<tactic>`` that any tactic accepts
OVERRIDE_KEYS = ("per_unit", "by_segment")

TACTIC_VALUES: dict[Tactic, TacticValueRule] = {
    rule.tactic: rule
    for rule in (
        TacticValueRule(
            Tactic.CROSS_SELL,
            "orders",
            "one purchase in a category the customer did not buy before",
            "category margin per purchase (default: value.margin x mean revenue per order of "
            "the segment)",
            ("category_margin",),
        ),
        TacticValueRule(
            Tactic.UP_SELL,
            "revenue",
            "one currency unit of spend",
            "margin on the extra spend (default: value.margin)",
            ("margin",),
        ),
        TacticValueRule(
            Tactic.FREQUENCY,
            "orders",
            "one order in the horizon",
            "margin per order (default: value.margin x mean revenue per order of the segment)",
            ("margin_per_order",),
        ),
        TacticValueRule(
            Tactic.MARGIN,
            "converted",
            "one purchase at the chosen price",
            "price - unit cost per buyer, set per segment by the pricing stage; the discount "
            "paid to buyers who would have bought at today's price (price dilution) is in the "
            "cost (prices.csv `price_dilution`)",
            (),
        ),
        TacticValueRule(
            Tactic.RETENTION,
            "converted",
            "one customer kept (converted = still active at the horizon)",
            "the customer's lifetime value if kept, net of cost to serve (default: the value "
            "per conversion; value=clv: the segment's CLV)",
            ("clv_if_kept",),
        ),
        TacticValueRule(
            Tactic.REFERRAL,
            "orders",
            "one referred customer brought in",
            "referred_clv - acquisition_cost (default referred_clv: the mean value per "
            "conversion over all customers; acquisition_cost 0)",
            ("referred_clv", "acquisition_cost"),
        ),
        TacticValueRule(
            Tactic.COST_TO_SERVE,
            "converted",
            "one customer moved to the cheaper way of serving them",
            "the cost to serve saved per customer moved: saving_per_customer, or saving_share "
            "x the segment's mean cost to serve",
            ("saving_per_customer", "saving_share"),
        ),
    )
}


def rule_for(tactic: str | Tactic) -> TacticValueRule:
    return TACTIC_VALUES[Tactic.parse(str(tactic), where="value.tactics")]


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``value.tactics`` checked: known tactics, known keys, numbers where numbers are due."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in (overrides or {}).items():
        rule = rule_for(name)
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"value.tactics.{name}: expected a mapping such as {{per_unit: 12.5}}, got {spec!r}"
            )
        allowed = (*OVERRIDE_KEYS, *rule.keys)
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ValueError(
                f"value.tactics.{name}: unknown key(s) {unknown}; {name} takes {list(allowed)}"
            )
        clean: dict[str, Any] = {}
        for key, raw in spec.items():
            if key == "by_segment":
                if not isinstance(raw, Mapping):
                    raise ValueError(
                        f"value.tactics.{name}.by_segment: expected {{segment: value}}, got {raw!r}"
                    )
                clean[key] = {
                    str(s): _number(f"value.tactics.{name}.by_segment.{s}", v)
                    for s, v in raw.items()
                }
            else:
                clean[key] = _number(f"value.tactics.{name}.{key}", raw)
        if "saving_share" in clean and not 0 <= clean["saving_share"] <= 1:
            raise ValueError(
                f"value.tactics.{name}.saving_share must be in [0, 1], got {clean['saving_share']}"
            )
        if "margin" in clean and not 0 < clean["margin"] <= 1:
            raise ValueError(
                f"value.tactics.{name}.margin must be in (0, 1], got {clean['margin']}"
            )
        for key in (
            "acquisition_cost",
            "saving_per_customer",
            "category_margin",
            "margin_per_order",
        ):
            if key in clean and clean[key] < 0:
                raise ValueError(f"value.tactics.{name}.{key} must be >= 0, got {clean[key]}")
        out[rule.tactic.value] = clean
    return out


def _number(key: str, raw: object) -> float:
    try:
        v = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{key}={raw!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{key}={raw!r} must be finite")
    return v
