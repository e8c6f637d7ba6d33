"""Wave to wave: assign the next wave from a finished run, and value a run's policy on a later wave.

``uplift next-wave`` (:func:`next_wave`) turns a run's posterior into the next experiment: the
Thompson shares per segment are the run's own (:func:`uplift.pipeline.thompson_shares`, the
function that wrote its ``next_wave_shares.csv``), and each customer of a new list gets an arm by a
salted hash within its segment (:func:`uplift.experiment.nextwave.assign_next_wave`), so

* the arm depends only on (salt, customer id, segment shares): appending customers to the list
  never moves an earlier customer (the default salt is ``<experiment>:wave<number>``, the same on
  every re-run of one wave);
* every row logs the probability of the label it got, ``(1 - H) * share`` for an arm and ``H``
  for the global holdout (the same customers in every experiment, see
  :mod:`uplift.experiment.assignment`), which is what off-policy evaluation needs later;
* a contact cap (``wave.max_contacts`` with a ``wave.contacts`` history) keeps customers who were
  already contacted that often out of the treated arms. They stay in the file, in the control
  arm (or the global holdout, which does not depend on the cap), marked ``contact_capped``; their
  control probability is ``1 - H`` (they could only be held out or left alone), so the file stays
  a true record. They are outside the randomized part of the wave, so ``evaluate-policy`` leaves
  them out (no policy can reach them either, the cap binds it too).

``uplift evaluate-policy`` (:func:`evaluate_wave_policy`) values a run's targeting policy (its
``allocation.csv``: a share of each segment per arm; or its ``targets.csv``: which customer gets
which arm) on a later randomized wave with outcomes, by IPW, SNIPW, DM and DR
(:func:`uplift.experiment.offpolicy.evaluate_policy`), in the run's money: value per unit from the
run's own ``prepared.values``, offer costs from its arms. The planned value of the policy (the
posterior expectation the run reported) stands beside the realised estimate.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uplift.atomic_io import atomic_write_csv, atomic_write_json, atomic_write_text
from uplift.config import AppConfig
from uplift.data.contract import SEGMENT_SEP, DataValidationError, derive_columns
from uplift.data.io import load_customers, sniff_kind
from uplift.experiment.assignment import BUCKETS, HOLDOUT
from uplift.experiment.nextwave import assign_next_wave
from uplift.experiment.offpolicy import evaluate_policy
from uplift.pipeline import eligible_customers, thompson_shares
from uplift.runs import RunLoadError, SavedRun, load_run

__all__ = [
    "ASSIGNMENT_COLUMNS",
    "POLICY_VALUE_COLUMNS",
    "WaveError",
    "assign_wave",
    "contact_counts",
    "evaluate_wave_policy",
    "next_wave",
    "wave_shares",
]

ASSIGNMENT_FILE = "next_wave_assignment.csv"
ASSIGNMENT_COLUMNS = ["customer_id", "segment", "arm", "probability", "wave", "salt"]
#: appended after the contract columns
EXTRA_COLUMNS = ["contact_capped"]
POLICY_VALUE_FILE = "policy_value.csv"
POLICY_REPORT_FILE = "policy_report.md"
POLICY_VALUE_COLUMNS = [
    "estimator",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "level",
    "n",
    "method",
    "customers",
    "total",
    "total_ci_low",
    "total_ci_high",
    "planned_per_customer",
    "planned_total",
    "planned_total_low",
    "planned_total_high",
    "policy",
]
#: the column of a wave file that holds the logged assignment probability, first found wins
PROBABILITY_COLUMNS = ("probability", "assignment_probability")


class WaveError(ValueError):
    """Input a wave verb cannot use; the message names the key or column and the fix."""


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def _run(folder: str | None) -> SavedRun:
    if folder in (None, ""):
        raise WaveError(
            "wave.run is not set: pass wave.run=<run folder>, e.g. "
            "wave.run=outputs/synthetic_demo/2026-12-03_10-00-00 (a finished `uplift` run)"
        )
    path = Path(str(folder)).expanduser()
    if not path.is_dir():
        raise WaveError(
            f"wave.run={folder!r} is not a folder (resolved to {path.resolve()}); pass the "
            "folder of a finished `uplift` run (it holds summary.json and config.yaml)"
        )
    try:
        return load_run(path)
    except RunLoadError as e:
        raise WaveError(f"wave.run={folder!r}: {e}") from None


def _run_config(folder: str | None) -> AppConfig:
    """The run's configuration alone (cheap: no data, no posteriors), to check inputs first."""
    from uplift.runs import _config_of

    if folder in (None, "") or not Path(str(folder)).expanduser().is_dir():
        _run(folder)  # raises, naming the problem
    try:
        return _config_of(Path(str(folder)).expanduser())
    except RunLoadError as e:
        raise WaveError(f"wave.run={folder!r}: {e}") from None


def read_table(path: str | Path | None, key: str) -> pd.DataFrame:
    """A CSV (plain or compressed) or Parquet file through the project's reader; errors name
    ``key`` (the config key that gave the path)."""
    if path in (None, ""):
        raise WaveError(f"{key} is not set: pass {key}=/path/to/file.csv (or .csv.gz, .parquet)")
    p = Path(str(path)).expanduser()
    source = "csv"
    if p.is_file():
        with open(p, "rb") as f:
            source = "parquet" if sniff_kind(f.read(8)) == "parquet" else "csv"
    try:
        return load_customers(p, source)
    except DataValidationError as e:
        raise WaveError(str(e).replace("data.path", key)) from None


def _require(frame: pd.DataFrame, columns: list[str], key: str, why: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise WaveError(
            f"{key}: column(s) {missing} missing ({why}); the file has {list(frame.columns)}"
        )


def customer_list(
    frame: pd.DataFrame, config: AppConfig, key: str = "wave.customers"
) -> pd.DataFrame:
    """``customer_id, segment`` of a customer list, with the run's segment label: its
    ``data.columns.segments`` joined as in the run (derived ones via ``data.derive``), or a
    ``segment`` column holding the label itself."""
    cols = config.data.columns
    id_col = cols.customer_id or "customer_id"
    seg_cols = list(cols.segments)
    derive = {k: v for k, v in config.data.derive.items() if k in seg_cols and k not in frame}
    if derive:
        try:
            frame = derive_columns(frame, dict(derive))
        except DataValidationError as e:
            raise WaveError(f"{key}: {e}") from None
    if all(c in frame.columns for c in seg_cols):
        parts = [frame[c].astype(str).where(frame[c].notna()) for c in seg_cols]
        segment = parts[0]
        for part in parts[1:]:
            segment = segment + SEGMENT_SEP + part
    elif "segment" in frame.columns:
        segment = frame["segment"].astype(str).where(frame["segment"].notna())
    else:
        missing = [c for c in seg_cols if c not in frame.columns]
        raise WaveError(
            f"{key}: segment column(s) {missing} missing: the run segments customers by "
            f"data.columns.segments={seg_cols}; add them (or a 'segment' column with the run's "
            f"labels, e.g. {SEGMENT_SEP.join(seg_cols)}); the file has {list(frame.columns)}"
        )
    _require(frame, [id_col], key, "the customer id, data.columns.customer_id of the run")
    ids = frame[id_col]
    if ids.isna().any():
        raise WaveError(f"{key}: {int(ids.isna().sum())} row(s) have no {id_col!r}")
    dup = ids[ids.map(str).duplicated()]
    if len(dup):
        raise WaveError(
            f"{key}: {len(dup)} duplicated {id_col!r} value(s), e.g. {dup.head(3).tolist()}; "
            "list each customer once"
        )
    if segment.isna().any():
        raise WaveError(
            f"{key}: {int(segment.isna().sum())} row(s) have no value in the segment column(s) "
            f"{seg_cols}; fill or drop them"
        )
    return pd.DataFrame({"customer_id": ids.to_numpy(), "segment": segment.to_numpy()})


def contact_counts(
    history: pd.DataFrame, key: str = "wave.contacts"
) -> tuple[pd.Series, int | None]:
    """Contacts per customer id (as text) from a history of ``customer_id, wave`` rows (one per
    contact; a customer listed twice in one wave counts once) or ``customer_id, contacts``
    counts (summed), and the last wave number in it (None without a ``wave`` column)."""
    _require(history, ["customer_id"], key, "the id of each contacted customer")
    ids = history["customer_id"].map(str)
    last = None
    if "contacts" in history.columns:
        n = pd.to_numeric(history["contacts"], errors="coerce")
        if n.isna().any() or (n < 0).any():
            raise WaveError(f"{key}: column 'contacts' must hold counts >= 0 in every row")
        counts = n.groupby(ids).sum()
    elif "wave" in history.columns:
        counts = pd.DataFrame({"id": ids, "wave": history["wave"].map(str)}).drop_duplicates()
        counts = counts.groupby("id").size()
    else:
        raise WaveError(
            f"{key}: needs a 'wave' column (one row per customer and wave contacted) or a "
            f"'contacts' column (contacts so far per customer); the file has {list(history.columns)}"
        )
    if "wave" in history.columns:
        waves = pd.to_numeric(history["wave"], errors="coerce")
        if waves.notna().any():
            last = int(waves.max())
    return counts.astype(float), last


# ----------------------------------------------------------------------------------------------
# next wave
# ----------------------------------------------------------------------------------------------


def wave_shares(run: SavedRun, min_share: float | None = None) -> pd.DataFrame:
    """The run's Thompson shares per (segment, arm) (its ``next_wave_shares.csv`` at the run's
    ``readout.next_wave_min_share``), from its saved posteriors."""
    try:
        return thompson_shares(
            run.config, run.draws, run.prepared.values, run.prepared.data.arm_map, min_share
        )
    except ValueError as e:
        raise WaveError(f"wave.min_share: {e}") from None


def assign_wave(
    customers: pd.DataFrame,
    shares: pd.DataFrame,
    *,
    salt: str,
    wave: int,
    control: str,
    holdout_share: float = 0.0,
    contacts: pd.Series | None = None,
    max_contacts: int | None = None,
) -> pd.DataFrame:
    """``next_wave_assignment.csv`` for ``customers`` (``customer_id, segment``): see the module
    docstring. ``contacts``: contacts so far per customer id (as text); with ``max_contacts``
    customers at or over the cap are not treated (control, or the global holdout)."""
    known = set(shares["segment"].map(str))
    unknown = sorted(set(customers["segment"].map(str)) - known)
    if unknown:
        raise WaveError(
            f"wave.customers: segment(s) {unknown[:10]} are not segments of the run (it has "
            f"{sorted(known)[:12]}); the next wave's shares come from the run's posterior, so "
            "only its segments can be assigned: drop those customers or refit with them"
        )
    try:
        table = assign_next_wave(customers, shares, salt, holdout_share=holdout_share)
    except ValueError as e:
        raise WaveError(f"wave: {e}") from None
    capped = np.zeros(len(table), dtype=bool)
    if max_contacts is not None and contacts is not None:
        n = table["customer_id"].map(str).map(contacts).fillna(0.0).to_numpy()
        capped = n >= max_contacts
        held = (table["arm"] == HOLDOUT).to_numpy()
        move = capped & ~held
        h_real = round(holdout_share * BUCKETS) / BUCKETS
        table.loc[move, "arm"] = control
        table.loc[move, "assignment_probability"] = 1.0 - h_real
    out = pd.DataFrame(
        {
            "customer_id": table["customer_id"].to_numpy(),
            "segment": table["segment"].to_numpy(),
            "arm": table["arm"].to_numpy(),
            "probability": table["assignment_probability"].to_numpy(dtype=float),
            "wave": int(wave),
            "salt": salt,
            "contact_capped": capped,
        }
    )
    return out[ASSIGNMENT_COLUMNS + EXTRA_COLUMNS]


def next_wave(
    config: AppConfig, output_dir: str | Path, run: SavedRun | None = None
) -> dict[str, Any]:
    """``uplift next-wave``: write ``next_wave_assignment.csv``, the shares it used
    (``next_wave_shares.csv``) and ``summary.json`` into ``output_dir``; returns the summary.
    ``run``: the loaded ``wave.run`` when the caller has it (else it is loaded)."""
    wc = config.wave
    out = Path(output_dir)
    if wc.max_contacts is not None and not wc.contacts:
        raise WaveError(
            "wave.max_contacts is set but wave.contacts is not: pass the contact history, "
            "wave.contacts=<file with customer_id and wave (or contacts) columns>"
        )
    # the list is checked against the run's configuration before its posteriors are read
    config_of_run = run.config if run is not None else _run_config(wc.run)
    customers = customer_list(read_table(wc.customers, "wave.customers"), config_of_run)
    run = run or _run(wc.run)
    counts, last = (None, None)
    if wc.contacts:
        counts, last = contact_counts(read_table(wc.contacts, "wave.contacts"))
    number = wc.number if wc.number is not None else (last + 1 if last is not None else 2)
    salt = wc.salt or f"{run.config.experiment_name}:wave{number}"
    shares = wave_shares(run, wc.min_share)
    control = run.prepared.data.arm_map.control.name
    table = assign_wave(
        customers,
        shares,
        salt=salt,
        wave=number,
        control=control,
        holdout_share=wc.holdout_share,
        contacts=counts,
        max_contacts=wc.max_contacts,
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(table, out / ASSIGNMENT_FILE)
    atomic_write_csv(shares, out / "next_wave_shares.csv")
    arms = table["arm"].value_counts()
    summary = {
        "status": "complete",
        "verb": "next-wave",
        "run": str(run.folder),
        "customers_file": str(wc.customers),
        "wave": number,
        "salt": salt,
        "customers": len(table),
        "holdout_share": wc.holdout_share,
        "min_share": float(
            run.config.readout.next_wave_min_share if wc.min_share is None else wc.min_share
        ),
        "max_contacts": wc.max_contacts,
        "contact_capped": int(table["contact_capped"].sum()),
        "arms": {str(k): int(v) for k, v in arms.items()},
        "outputs": [ASSIGNMENT_FILE, "next_wave_shares.csv"],
        "message": (
            f"wave {number}: {len(table):,} customers assigned (salt {salt!r}; "
            f"{int((table['arm'] == HOLDOUT).sum()):,} in the global holdout, "
            f"{int(table['contact_capped'].sum()):,} at the contact cap)"
        ),
    }
    atomic_write_json(summary, out / "summary.json")
    return summary


# ----------------------------------------------------------------------------------------------
# evaluate a policy on a later wave
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """What the policy's run expected of it: total incremental profit (and interval, when the
    run's own summary gives it) over ``customers`` customers."""

    total: float
    low: float
    high: float
    customers: float
    name: str


def _policy(run: SavedRun, spec: str, rows: pd.DataFrame) -> tuple[Any, Planned]:
    """The policy to evaluate (a table or a row column of ``rows``) and its planned value."""
    base = float(eligible_customers(run.config, run.prepared.cells).sum())
    if spec in ("allocation", "targets"):
        path = run.folder / f"{spec}.csv"
        if not path.is_file():
            raise WaveError(f"wave.policy={spec}: the run has no {path.name} (no plan was written)")
        name = path.name
    else:
        path, name = Path(spec).expanduser(), spec
    from uplift.atomic_io import unescape_frame

    table = unescape_frame(read_table(path, "wave.policy"))
    if "expected_incremental_profit" in table.columns:
        total = float(pd.to_numeric(table["expected_incremental_profit"]).sum())
    else:
        total = math.nan
    low = high = math.nan
    own = spec in ("allocation", "targets")
    hdi = run.summary.get("profit_hdi")
    if own and isinstance(hdi, list | tuple) and len(hdi) == 2:
        low, high = float(hdi[0]), float(hdi[1])
    planned = Planned(total, low, high, base, name)
    if "customer_id" in table.columns:  # targets: which customer gets which arm
        _require(table, ["arm"], "wave.policy", "the arm each listed customer gets")
        ids = table["customer_id"].map(str)
        if ids.duplicated().any():
            raise WaveError(
                "wave.policy: a customer is listed more than once (optimize.max_offers_per_customer"
                " > 1); off-policy evaluation needs one arm per customer"
            )
        arm_of = dict(zip(ids, table["arm"].map(str), strict=True))
        control = run.prepared.data.arm_map.control.name
        rows["_policy_arm"] = rows["customer_id"].map(str).map(arm_of).fillna(control)
        return "_policy_arm", planned
    _require(
        table,
        ["segment", "customers"],
        "wave.policy",
        "an allocation: customers per segment and arm",
    )
    if "eligible_customers" not in table.columns:
        elig = eligible_customers(run.config, run.prepared.cells)
        table = table.assign(eligible_customers=table["segment"].map(str).map(elig))
    return table, planned


def _value_per_unit(run: SavedRun, arms: list[str]) -> pd.Series:
    """Value of one unit of outcome per segment, for the tactics of ``arms`` (one metric)."""
    arm_map = run.prepared.data.arm_map
    unknown = sorted(set(arms) - set(arm_map.names) - {HOLDOUT})
    if unknown:
        raise WaveError(
            f"wave.outcomes: arm(s) {unknown} are not arms of the run ({list(arm_map.names)})"
        )
    tactics = sorted(
        {arm_map[a].tactic.value for a in arms if a != HOLDOUT} & set(run.prepared.values)
    )
    if not tactics:
        raise WaveError("wave.outcomes: no treated arm of a budget tactic of the run has rows")
    first = run.prepared.values[tactics[0]]
    for t in tactics[1:]:
        other = run.prepared.values[t].reindex(first.index)
        if not np.allclose(other.to_numpy(dtype=float), first.to_numpy(dtype=float)):
            raise WaveError(
                f"wave.outcomes: the wave's tactics {tactics} value their outcomes differently "
                "(different metrics); evaluate a wave of one outcome metric at a time"
            )
    return first


def evaluate_wave_policy(
    config: AppConfig, output_dir: str | Path, run: SavedRun | None = None
) -> dict[str, Any]:
    """``uplift evaluate-policy``: write ``policy_value.csv``, ``policy_report.md`` and
    ``summary.json`` into ``output_dir``; returns the summary. ``run``: the loaded ``wave.run``
    when the caller has it (else it is loaded)."""
    wc = config.wave
    out = Path(output_dir)
    if run is None:
        _run_config(wc.run)  # a missing or unfinished run folder is named before the inputs
    rows = read_table(wc.outcomes, "wave.outcomes")
    prob = next((c for c in PROBABILITY_COLUMNS if c in rows.columns), None)
    _require(
        rows,
        ["customer_id", "segment", "arm", wc.outcome_column],
        "wave.outcomes",
        "a later randomized wave: next_wave_assignment.csv with an outcome per customer "
        "(wave.outcome_column names it)",
    )
    if prob is None:
        raise WaveError(
            f"wave.outcomes: no assignment probability column ({' or '.join(PROBABILITY_COLUMNS)}); "
            "off-policy evaluation needs the probability each customer had of their arm, as "
            "next_wave_assignment.csv logs it"
        )
    run = run or _run(wc.run)
    capped = 0
    if "contact_capped" in rows.columns:
        flag = rows["contact_capped"].map(lambda v: str(v).strip().lower() in ("true", "1"))
        capped = int(flag.sum())
        rows = rows.loc[~flag.to_numpy()].reset_index(drop=True)
    rows = rows.assign(segment=rows["segment"].map(str), arm=rows["arm"].map(str))
    value = _value_per_unit(run, sorted(set(rows["arm"])))
    policy, planned = _policy(run, wc.policy, rows)
    arm_map = run.prepared.data.arm_map
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ev = evaluate_policy(
                rows,
                policy,
                arm_map,
                outcome_col=wc.outcome_column,
                value=value,
                propensity=prob,
                level=wc.level,
                seed=run.config.sampler.seed,
            )
        except ValueError as e:
            raise WaveError(f"evaluate-policy: {e}") from None
    notes = [str(w.message) for w in caught]
    table = ev.table.copy()
    n_pop = planned.customers
    table["customers"] = n_pop
    table["total"] = table["estimate"] * n_pop
    table["total_ci_low"] = table["ci_low"] * n_pop
    table["total_ci_high"] = table["ci_high"] * n_pop
    table["planned_per_customer"] = planned.total / n_pop if n_pop > 0 else math.nan
    table["planned_total"] = planned.total
    table["planned_total_low"] = planned.low
    table["planned_total_high"] = planned.high
    table["policy"] = planned.name
    table = table[POLICY_VALUE_COLUMNS]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(table, out / POLICY_VALUE_FILE)
    report = policy_report(table, ev.effective_sample_size, capped, notes, run, config)
    atomic_write_text(report, out / POLICY_REPORT_FILE)
    dr = table.set_index("estimator").loc["dr"]
    summary = {
        "status": "complete",
        "verb": "evaluate-policy",
        "run": str(run.folder),
        "outcomes_file": str(wc.outcomes),
        "policy": planned.name,
        "rows": int(ev.n),
        "contact_capped_excluded": capped,
        "effective_sample_size": ev.effective_sample_size,
        "planned_total": planned.total,
        "realised_total_dr": float(dr["total"]),
        "realised_total_dr_ci": [float(dr["total_ci_low"]), float(dr["total_ci_high"])],
        "level": wc.level,
        "warnings": notes,
        "outputs": [POLICY_VALUE_FILE, POLICY_REPORT_FILE],
        "message": headline(dr, config.report.currency),
    }
    atomic_write_json(summary, out / "summary.json")
    return summary


def _money(x: float, currency: str) -> str:
    if not math.isfinite(x):
        return "n/a"
    sign = "-" if x < 0 else ""
    return f"{sign}{currency}{abs(x):,.0f}"


def headline(dr: pd.Series, currency: str = "$") -> str:
    """``planned X, realised Y (90% interval a to b)`` from the DR row of policy_value.csv."""
    return (
        f"planned {_money(float(dr['planned_total']), currency)}, realised "
        f"{_money(float(dr['total']), currency)} ({float(dr['level']):.0%} interval "
        f"{_money(float(dr['total_ci_low']), currency)} to "
        f"{_money(float(dr['total_ci_high']), currency)})"
    )


def policy_report(
    table: pd.DataFrame,
    ess: float,
    capped: int,
    notes: list[str],
    run: SavedRun,
    config: AppConfig,
) -> str:
    """``policy_report.md``: the headline, then every estimator per customer and in total."""
    cur = config.report.currency
    dr = table.set_index("estimator").loc["dr"]
    lines = [
        "# Policy value on a later wave",
        "",
        f"Policy `{dr['policy']}` of run `{run.folder}` on `{config.wave.outcomes}` "
        f"({int(dr['n']):,} randomized customers"
        + (f"; {capped:,} at the contact cap left out" if capped else "")
        + ").",
        "",
        f"**{headline(dr, cur)}** (doubly robust estimate, incremental profit versus treating "
        f"nobody, scaled to the plan's {dr['customers']:,.0f} customers).",
        "",
        "| estimator | per customer | interval | total | interval |",
        "|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        lines.append(
            f"| {r.estimator} | {r.estimate:,.3f} | {r.ci_low:,.3f} to {r.ci_high:,.3f} | "
            f"{_money(r.total, cur)} | {_money(r.total_ci_low, cur)} to "
            f"{_money(r.total_ci_high, cur)} |"
        )
    lines += [
        "",
        f"Planned per customer {dr['planned_per_customer']:,.3f}; effective sample size of the "
        f"policy's importance weights {ess:,.0f}. Totals assume the wave's segment mix is the "
        "plan's; DR is the estimator to read (DM and DR agree when propensities are constant "
        "per segment and arm).",
    ]
    if notes:
        lines += ["", "Warnings:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"
