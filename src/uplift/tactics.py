"""Customer-development tactics and the arms of an experiment that deliver them."""

from __future__ import annotations

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
