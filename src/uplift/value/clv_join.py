"""Join customer lifetime value (``uplift clv``) to an experiment.

Two uses, one join key (the customer id):

1. :func:`attach_value_tier` adds each experiment customer's CLV tier as a column, so the tier can
   be listed in ``data.columns.segments`` and the uplift models estimate effects per value tier.
2. :class:`ClvSegmentValue` values one incremental conversion in a segment at the mean CLV of the
   segment's customers, so the optimizer weighs a conversion from a high-value customer above one
   from a low-value customer instead of using one constant for everybody.

Why CLV is taken as-is: ``uplift clv`` already multiplies spend by ``clv.margin`` and discounts
future purchases, so its ``clv_mean`` is a present value of margin. Multiplying it by
``value.margin`` again would count the margin twice; :class:`ClvSegmentValue` refuses that unless
told the CLV is a revenue figure (``margin_already_applied=False``).

Why the id join is on text: a CSV written by ``uplift clv`` and an experiment file read by pandas
often disagree on the id's type (``42`` vs ``"42"`` vs ``42.0``). Ids are compared as normalised
strings on both sides so such a mismatch cannot silently join nothing.

Caveat worth repeating to users: the CLV should be computed from transactions *before* the
experiment started (``clv.calibration_end`` <= experiment start); otherwise the treatment itself
moves the CLV used to value it.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from uplift.atomic_io import unescape_frame

REQUIRED_COLUMNS = ("customer_id", "clv_mean")
INTERVAL_COLUMNS = ("clv_hdi_low", "clv_hdi_high")
DEFAULT_HDI_PROB = (
    0.94  # report.hdi_prob's default, used when clv_summary.json is not beside the csv
)

#: "mean" or "median" (checked); str so that the configuration's StrEnum passes as it is
Statistic = str


# ----------------------------------------------------------------------------------------------
# Ids
# ----------------------------------------------------------------------------------------------


def _id_key(v: object) -> str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def normalise_ids(ids: pd.Series | pd.Index | Sequence[object]) -> pd.Index:
    """Customer ids as comparable strings: ``42``, ``42.0`` and ``" 42 "`` all become ``"42"``.

    Integer-valued floats appear when a numeric id column passes through a CSV with gaps; text
    ids keep their case and inner characters, only surrounding blanks are dropped.
    """
    s = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype=object)
    if pd.api.types.is_integer_dtype(s) and not s.isna().any():
        return pd.Index(s.astype(str).to_numpy(), dtype=object)
    return pd.Index([_id_key(v) for v in s.to_numpy(dtype=object)], dtype=object)


def _examples(values: Sequence[object], k: int = 5) -> str:
    vals = list(dict.fromkeys(values))
    shown = ", ".join(repr(v) for v in vals[:k])
    return shown + (f", ... ({len(vals)} distinct)" if len(vals) > k else "")


def _check_value_table(customer_value: pd.DataFrame, need: Sequence[str], what: str) -> None:
    missing = [c for c in need if c not in customer_value.columns]
    if missing:
        raise ValueError(
            f"{what}: the customer value table lacks column(s) {missing}; it has "
            f"{list(customer_value.columns)[:12]}. Use the customer_value.csv written by "
            "`uplift clv` (columns customer_id, clv_mean, clv_hdi_low, clv_hdi_high, tier, ...)."
        )
    ids = normalise_ids(customer_value["customer_id"])
    if ids.isna().any():
        raise ValueError(f"{what}: {int(ids.isna().sum())} row(s) have no customer_id")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(
            f"{what}: customer_id must be unique in the customer value table; "
            f"{len(dup)} duplicated, e.g. {_examples(dup.tolist())}"
        )


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def load_customer_value(path: str | Path) -> pd.DataFrame:
    """Read a ``customer_value.csv`` written by ``uplift clv`` and check it can be joined.

    Ids are read as text (the join normalises them anyway, and text never loses leading zeros).
    When ``clv_summary.json`` sits beside the csv its ``hdi_prob`` is kept in
    ``frame.attrs["hdi_prob"]``: the interval columns mean nothing without it, and
    :meth:`ClvSegmentValue.per_conversion_draws` needs it.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        hint = (
            " (it is a directory: point at the customer_value.csv inside it)" if p.is_dir() else ""
        )
        raise ValueError(
            f"customer value file {str(p)!r} does not exist{hint}. Run `uplift clv ...` first; it "
            "writes customer_value.csv into its output directory (relative paths are from the cwd)."
        )
    suffixes = "".join(p.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        frame = pd.read_parquet(p)
    else:
        frame = unescape_frame(pd.read_csv(p, dtype={"customer_id": str}))
    what = f"customer value file {str(p)!r}"
    _check_value_table(frame, REQUIRED_COLUMNS, what)
    clv = pd.to_numeric(frame["clv_mean"], errors="coerce")
    bad = frame.loc[clv.isna() | ~np.isfinite(clv.fillna(0.0)), "customer_id"]
    if len(bad):
        raise ValueError(
            f"{what}: clv_mean must be a finite number; {len(bad)} row(s) are not, e.g. customer(s) "
            f"{_examples(bad.tolist())}"
        )
    frame["clv_mean"] = clv.astype(float)
    summary = p.with_name("clv_summary.json")
    frame.attrs["hdi_prob"] = DEFAULT_HDI_PROB
    if summary.is_file():
        with contextlib.suppress(KeyError, ValueError, TypeError):
            frame.attrs["hdi_prob"] = float(json.loads(summary.read_text())["hdi_prob"])
    frame.attrs["source"] = str(p)
    return frame


# ----------------------------------------------------------------------------------------------
# Value tier as a segment dimension
# ----------------------------------------------------------------------------------------------


def attach_value_tier(
    experiment_rows: pd.DataFrame,
    customer_value: pd.DataFrame,
    id_col: str = "customer_id",
    tier_col: str = "tier",
    new_col: str = "value_tier",
    missing: str = "unknown",
    overwrite: bool = False,
) -> pd.DataFrame:
    """The experiment rows plus ``new_col``: each customer's CLV tier (a copy; input untouched).

    List ``new_col`` in ``data.columns.segments`` to make value tier a segment dimension.

    ``missing="error"`` refuses experiment customers without a CLV row (listing examples); any
    other string is the tier label they get (default ``"unknown"``: new customers with no purchase
    history are a real group, and dropping them would bias the experiment). A summary of the
    join is kept in ``result.attrs["value_tier_join"]``.
    """
    if id_col not in experiment_rows.columns:
        raise ValueError(
            f"experiment rows have no id column {id_col!r} (data.columns.customer_id); columns: "
            f"{list(experiment_rows.columns)[:12]}. The CLV tier is joined by customer id."
        )
    if tier_col not in customer_value.columns:
        raise ValueError(
            f"the customer value table has no tier column {tier_col!r}; columns: "
            f"{list(customer_value.columns)[:12]}"
        )
    if new_col in experiment_rows.columns and not overwrite:
        raise ValueError(
            f"experiment rows already have a column {new_col!r}; choose another name for the CLV "
            "tier (e.g. 'clv_tier') or pass overwrite=True to replace it"
        )
    if not missing:
        raise ValueError("missing must be 'error' or a non-empty tier label such as 'unknown'")
    _check_value_table(customer_value, ("customer_id",), "attach_value_tier")

    tiers = pd.Series(
        customer_value[tier_col].astype(str).to_numpy(),
        index=normalise_ids(customer_value["customer_id"]),
    )
    keys = normalise_ids(experiment_rows[id_col])
    joined = tiers.reindex(keys)
    absent = joined.isna().to_numpy()
    n_absent = int(absent.sum())
    if n_absent == len(joined) and len(joined):
        raise ValueError(
            f"no experiment customer has a CLV row: experiment ids (column {id_col!r}) look like "
            f"{_examples(list(keys[:5]))}, CLV ids look like {_examples(list(tiers.index[:5]))}. "
            "Are both from the same customer base and the same id column?"
        )
    if n_absent and missing == "error":
        raise ValueError(
            f"{n_absent} of {len(joined)} experiment customers have no CLV row, e.g. "
            f"{_examples(list(keys[absent]))}. Value them in `uplift clv` (their transactions may "
            "start after clv.calibration_end), or pass missing='unknown' to give them their own tier."
        )
    if n_absent and missing in set(tiers.unique()):
        raise ValueError(
            f"missing={missing!r} is also a CLV tier label; choose a label that is not one of "
            f"{sorted(tiers.unique())}"
        )
    out = experiment_rows.copy()
    out[new_col] = np.where(absent, missing, joined.to_numpy(dtype=object)).astype(str)
    out.attrs["value_tier_join"] = {
        "customers": len(joined),
        "matched": len(joined) - n_absent,
        "missing": n_absent,
        "missing_label": missing if n_absent else None,
        "missing_examples": list(keys[absent][:5]),
    }
    return out


# ----------------------------------------------------------------------------------------------
# Segment value from CLV
# ----------------------------------------------------------------------------------------------


def _lognormal_params(
    mean: np.ndarray, low: np.ndarray, high: np.ndarray, prob: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` of a lognormal with the given mean and (roughly) the given interval.

    sigma from the interval's width on the log scale: ``log(high / low) / (2 z)``; when the lower
    bound is 0 only the upper half is usable: ``log(high / mean) / z``. ``mu`` then makes the mean
    exact: ``mu = log(mean) - sigma^2 / 2``. Customers with zero mean get ``mu = -inf`` (value 0).
    """
    z = float(stats.norm.ppf(0.5 + prob / 2.0))
    m = np.asarray(mean, dtype=float)
    lo = np.asarray(low, dtype=float)
    hi = np.asarray(high, dtype=float)
    pos = m > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        both = np.log(hi / lo) / (2.0 * z)
        upper = np.log(hi / m) / z
    sigma = np.where(pos & (lo > 0) & (hi > lo), both, np.where(pos & (hi > m), upper, 0.0))
    sigma = np.clip(np.nan_to_num(sigma, nan=0.0, posinf=3.0), 0.0, 3.0)
    with np.errstate(divide="ignore"):
        mu = np.where(pos, np.log(np.where(pos, m, 1.0)) - sigma**2 / 2.0, -np.inf)
    return mu, sigma


@dataclass(eq=False)
class ClvSegmentValue:
    """:class:`~uplift.value.per_conversion.SegmentValue` from ``uplift clv``'s customer values.

    One incremental conversion in a segment is worth ``scale x`` the mean (or median) CLV of the
    segment's customers. The CLV of ``uplift clv`` is already a discounted present value of margin,
    so no margin is applied on top (``margin_already_applied=True``). If your CLV is a revenue
    figure, pass ``margin_already_applied=False`` and ``margin``. ``scale`` is the share of a
    customer's lifetime value that one conversion creates: 1 (the default) treats a conversion as
    winning or keeping the whole relationship, which fits retention and reactivation; a one-off
    purchase lift may be worth much less.

    ``customer_segments`` maps experiment customers to segments (``data.frame[["customer_id",
    "segment"]]`` in the pipeline). Customers of the experiment without a CLV row are left out of
    the segment means; segments with no CLV customers at all get the overall mean over joined
    experiment customers. Both are recorded in ``notes`` (and the fallback segments in
    ``result.attrs["fallback_segments"]``), because a silently imputed value is how a plan goes
    wrong.
    """

    customer_value: pd.DataFrame
    customer_segments: pd.DataFrame
    margin_already_applied: bool = True
    statistic: Statistic = "mean"
    margin: float | None = None
    scale: float = 1.0
    hdi_prob: float | None = None
    notes: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.statistic not in ("mean", "median"):
            raise ValueError(f"statistic={self.statistic!r} is unknown; use 'mean' or 'median'")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.margin_already_applied and self.margin is not None:
            raise ValueError(
                "margin given although margin_already_applied=True: the CLV of `uplift clv` already "
                "includes clv.margin, so applying a margin again would count it twice. Drop margin, "
                "or set margin_already_applied=False if your CLV is revenue."
            )
        if not self.margin_already_applied and not (
            self.margin is not None and 0 < self.margin <= 1
        ):
            raise ValueError(
                "margin_already_applied=False needs margin in (0, 1] (the share of revenue that is "
                f"profit), got margin={self.margin!r}"
            )
        _check_value_table(self.customer_value, REQUIRED_COLUMNS, "ClvSegmentValue")
        for c in ("customer_id", "segment"):
            if c not in self.customer_segments.columns:
                raise ValueError(
                    f"customer_segments needs columns customer_id and segment (e.g. "
                    f"data.frame[['customer_id', 'segment']]); it lacks {c!r}"
                )
        if self.hdi_prob is None:
            self.hdi_prob = float(self.customer_value.attrs.get("hdi_prob", DEFAULT_HDI_PROB))
        if not 0 < self.hdi_prob < 1:
            raise ValueError(f"hdi_prob must be in (0, 1), got {self.hdi_prob}")
        self._joined = self._join()

    # -- the join ------------------------------------------------------------------------------
    def _factor(self) -> float:
        return self.scale * (1.0 if self.margin_already_applied else float(self.margin))  # type: ignore[arg-type]

    def _join(self) -> pd.DataFrame:
        """One row per experiment customer with a CLV row: segment, clv_mean (+ interval)."""
        cv = self.customer_value
        cols = ["clv_mean", *(c for c in INTERVAL_COLUMNS if c in cv.columns)]
        values = pd.DataFrame(
            {c: pd.to_numeric(cv[c], errors="coerce").to_numpy(dtype=float) for c in cols},
            index=normalise_ids(cv["customer_id"]),
        )
        seg = self.customer_segments
        keys = normalise_ids(seg["customer_id"])
        if keys.duplicated().any():
            dup = keys[keys.duplicated()]
            raise ValueError(
                f"customer_segments has {len(dup)} duplicated customer id(s), e.g. "
                f"{_examples(dup.tolist())}; one row per experiment customer is expected"
            )
        joined = values.reindex(keys)
        joined.insert(0, "segment", seg["segment"].astype(str).to_numpy())
        has = joined["clv_mean"].notna().to_numpy()
        if not has.any():
            raise ValueError(
                f"no experiment customer has a CLV row: experiment ids look like "
                f"{_examples(list(keys[:5]))}, CLV ids look like {_examples(list(values.index[:5]))}. "
                "Check data.columns.customer_id and that both tables cover the same customers."
            )
        n_missing = int((~has).sum())
        if n_missing:
            self.notes.append(
                f"{n_missing} of {len(has)} experiment customers ({n_missing / len(has):.1%}) have "
                f"no CLV row and are left out of the segment means, e.g. "
                f"{_examples(list(keys[~has]))}"
            )
        out = joined[has]
        out.index.name = "customer_id"
        return out

    def _aggregate(self, frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("segment")["clv_mean"].agg(self.statistic)

    def _overall(self) -> float:
        v = self._joined["clv_mean"]
        return float(v.mean() if self.statistic == "mean" else v.median())

    @property
    def overall_value(self) -> float:
        """Value of a conversion ignoring segments: the statistic over all joined customers.

        The fair constant to compare against: same average value, no tilt toward any segment.
        """
        return self._overall() * self._factor()

    def _segments(self, cells: pd.DataFrame) -> tuple[list[str], list[str]]:
        segments = sorted(cells["segment"].astype(str).unique())
        known = set(self._joined["segment"])
        if not known & set(segments):
            raise ValueError(
                f"none of the cells' segments {segments[:5]} has customers with CLV (segments of "
                f"customer_segments: {sorted(known)[:5]}); build customer_segments from the same "
                "data as the cells (data.frame[['customer_id', 'segment']])."
            )
        fallback = [s for s in segments if s not in known]
        return segments, fallback

    def _note_fallback(self, fallback: list[str], overall: float) -> None:
        if fallback:
            msg = (
                f"segment(s) {fallback} have no customers with CLV; valued at the overall "
                f"{self.statistic} CLV {overall:,.4g}"
            )
            if msg not in self.notes:
                self.notes.append(msg)

    # -- SegmentValue ----------------------------------------------------------------------------
    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        """Value of one incremental conversion per segment: ``scale x`` segment CLV statistic."""
        segments, fallback = self._segments(cells)
        overall = self._overall()
        self._note_fallback(fallback, overall)
        vals = self._aggregate(self._joined).reindex(segments).fillna(overall) * self._factor()
        out = pd.Series(
            vals.to_numpy(dtype=float),
            index=pd.Index(segments, name="segment"),
            name="value_per_conversion",
        )
        out.attrs["fallback_segments"] = fallback
        return out

    def customers_with_value(self) -> pd.DataFrame:
        """Per segment: experiment customers with a CLV row and their mean / median CLV."""
        g = self._joined.groupby("segment")["clv_mean"]
        return pd.DataFrame(
            {"customers_with_clv": g.size(), "clv_mean": g.mean(), "clv_median": g.median()}
        )

    def per_conversion_draws(
        self, cells: pd.DataFrame, n_draws: int = 1000, seed: int = 0
    ) -> xr.DataArray:
        """Approximate posterior draws of the segment value, dims ``(sample, segment)``.

        ``customer_value.csv`` keeps only each customer's mean and HDI, not the draws, so each
        customer's CLV is approximated as lognormal with that mean and interval (normal on the log
        scale; see :func:`_lognormal_params`). The draws are *comonotone* across customers (one
        standard-normal shock per draw shared by everybody): in ``uplift clv`` the spread of a
        customer's CLV comes from the population parameters of BG/NBD and Gamma-Gamma, which all
        customers share, so independent draws would average the uncertainty away and make the
        segment value look far more certain than it is. Fully shared shocks slightly overstate
        it instead, which is the safer side for a budget decision.

        The mean over draws matches :meth:`per_conversion` for ``statistic="mean"`` up to Monte
        Carlo error. With ``statistic="median"`` the median is taken per draw.
        """
        missing = [c for c in INTERVAL_COLUMNS if c not in self._joined.columns]
        if missing:
            raise ValueError(
                f"per_conversion_draws needs the interval columns {list(INTERVAL_COLUMNS)} of "
                f"customer_value.csv; missing {missing}. Use per_conversion for point values."
            )
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}")
        segments, fallback = self._segments(cells)
        j = self._joined
        lo = j["clv_hdi_low"].fillna(j["clv_mean"]).to_numpy(dtype=float)
        hi = j["clv_hdi_high"].fillna(j["clv_mean"]).to_numpy(dtype=float)
        assert self.hdi_prob is not None  # resolved in __post_init__
        mu, sigma = _lognormal_params(j["clv_mean"].to_numpy(dtype=float), lo, hi, self.hdi_prob)
        z = np.random.default_rng(seed).standard_normal(n_draws)
        labels = j["segment"].to_numpy()
        agg = np.mean if self.statistic == "mean" else np.median

        def draws_for(mask: np.ndarray) -> np.ndarray:
            m, s = mu[mask], sigma[mask]
            out = np.empty(n_draws)
            chunk = max(1, 2_000_000 // max(len(m), 1))  # bound memory: draws x customers
            for start in range(0, n_draws, chunk):
                zz = z[start : start + chunk, None]
                out[start : start + chunk] = agg(np.exp(m[None, :] + s[None, :] * zz), axis=1)
            return out

        overall = draws_for(np.ones(len(j), dtype=bool))
        self._note_fallback(fallback, float(overall.mean()))
        cols = [overall if s in fallback else draws_for(labels == s) for s in segments]
        return xr.DataArray(
            np.column_stack(cols) * self._factor(),
            dims=("sample", "segment"),
            coords={"sample": np.arange(n_draws), "segment": segments},
            name="value_per_conversion",
            attrs={"fallback_segments": fallback, "approximation": "lognormal, comonotone"},
        )


def clv_value_for_data(
    customer_value: pd.DataFrame,
    frame: pd.DataFrame,
    *,
    statistic: Statistic = "mean",
    scale: float = 1.0,
) -> ClvSegmentValue:
    """:class:`ClvSegmentValue` for validated experiment rows (``CustomerData.frame``).

    The pipeline's entry point for ``value.kind=clv``: its frame has ``customer_id`` and
    ``segment``. Refuses data without real customer ids (``data.columns.customer_id=null``
    numbers rows, which cannot match any CLV customer).
    """
    if "customer_id" not in frame.columns or "segment" not in frame.columns:
        raise ValueError(
            "value.kind=clv needs experiment rows with customer_id and segment columns"
        )
    return ClvSegmentValue(
        customer_value, frame[["customer_id", "segment"]], statistic=statistic, scale=scale
    )


def tier_spend_share(table: pd.DataFrame, tier: str, position: int = 0) -> float:
    """Share of an allocation's spend in segments whose ``position``-th ``/`` part is ``tier``.

    Used to report where a budget goes by value tier (e.g. ``tier="high"`` for ``high/price``).
    """
    total = float(table["spend"].sum())
    if not total > 0 or math.isnan(total):
        return float("nan")
    part = table["segment"].astype(str).str.split("/").str[position]
    return float(table.loc[part == tier, "spend"].sum() / total)
