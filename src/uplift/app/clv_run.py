"""``uplift clv``: transactions -> per-customer lifetime value, tiers and keep/grow/shed.

The run is one straight line so its outputs can be trusted and re-derived: load and validate the
transactions, build the RFM summary (calibration / holdout split), fit BG/NBD (purchase counts)
and Gamma-Gamma (spend), turn posterior draws into discounted CLV per customer, cut value tiers,
classify keep / grow / shed and price retention. Every number is summarised from posterior
draws, so each total carries an interval. With a holdout period the forecast of repeat purchases
is scored against what customers actually did, which is the check a user should look at first.

Without experiment results there is no measured upside, so strategic value = actual value and
only the value-based shed rule can fire; the outputs say so rather than invent a "grow" class.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from uplift.atomic_io import (
    atomic_savefig,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    unescape_frame,
)
from uplift.stats import hdi
from uplift.value.clv import (
    BetaGeoModel,
    ClvSettings,
    GammaGammaModel,
    bgnbd_expected_purchases,
    customer_value,
)
from uplift.value.tiers import ClassificationRules, TierSpec, value_table
from uplift.value.transactions import TransactionColumns, rfm_summary, validate_transactions

if TYPE_CHECKING:
    from uplift.config import AppConfig, ClvConfig

SHIPPED_DATASETS = ("cdnow", "online_retail")
NO_UPLIFT_NOTE = (
    "No experiment uplift was given, so strategic value = actual value (CLV) and no customer can "
    "be 'grow'; 'shed' only fires when P(CLV < clv.shed_below) >= clv.shed_probability. Join "
    "the value tiers to an experiment's uplift to classify growth."
)


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def load_transactions(cfg: ClvConfig) -> tuple[pd.DataFrame, TransactionColumns, str]:
    """The raw transaction table, its column map and a one-line description of where it came from.

    Shipped datasets use their own column names (the ``clv.customer_id/date/amount`` mapping
    applies to ``clv.path`` only), so a preset cannot be broken by a stale mapping.
    """
    if cfg.dataset is not None:
        name = str(cfg.dataset).lower()
        if name == "cdnow":
            from uplift.value.datasets import CDNOW_COLUMNS, load_cdnow

            return (
                load_cdnow().transactions,
                CDNOW_COLUMNS,
                "CDNOW master (shipped, 23,570 customers)",
            )
        if name == "online_retail":
            from uplift.value.datasets import ONLINE_RETAIL_COLUMNS, load_online_retail

            return (
                load_online_retail(),
                ONLINE_RETAIL_COLUMNS,
                "UCI Online Retail I+II invoices (shipped)",
            )
        raise ValueError(
            f"clv.dataset={cfg.dataset!r} is not a shipped dataset; use one of "
            f"{list(SHIPPED_DATASETS)}, or set clv.dataset=null and clv.path to your file"
        )
    if not cfg.path:
        raise ValueError(
            "no transactions: set clv.dataset (cdnow, online_retail) or clv.path to a csv/parquet "
            "file with one row per purchase (customer id, date, amount)"
        )
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise ValueError(f"clv.path={str(path)!r} does not exist (relative paths are from the cwd)")
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        frame = pd.read_parquet(path)
    elif ".csv" in suffixes or ".txt" in suffixes or ".tsv" in suffixes:
        sep = "\t" if ".tsv" in suffixes else ","
        # strings in, so the validator (not pandas) decides what a bad date or amount is
        frame = pd.read_csv(path, sep=sep, dtype={cfg.customer_id: str, cfg.date: str})
    else:
        raise ValueError(
            f"clv.path={str(path)!r}: unknown file type {suffixes or '(none)'}; use .csv[.gz] or .parquet"
        )
    columns = TransactionColumns(customer_id=cfg.customer_id, date=cfg.date, amount=cfg.amount)
    return frame, columns, f"{path}"


# ----------------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------------


def _interval(draws: np.ndarray, prob: float) -> dict[str, float]:
    lo, hi = hdi(np.asarray(draws, dtype=float), prob, axis=0)
    return {"mean": float(np.mean(draws)), "hdi_low": float(lo), "hdi_high": float(hi)}


def _param_block(model: BetaGeoModel | GammaGammaModel, prob: float) -> dict[str, Any]:
    ps = model.param_summary(prob)
    diag = model.diagnostics()
    out: dict[str, Any] = {
        "method": model.method,
        "fit_seconds": model.fit_seconds,
        "parameters": {
            k: {c: float(ps.loc[k, c]) for c in ("mean", "sd", "hdi_low", "hdi_high")}
            for k in ps.index
        },
    }
    if diag is not None:
        out["diagnostics"] = diag.to_dict()
    else:
        out["diagnostics"] = {
            "note": "Laplace approximation: independent Gaussian draws at the posterior mode, "
            "no r-hat/ESS; refit with clv.method=nuts to check",
            "mode_logp": float(model.idata.attrs.get("clv_mode_logp", float("nan"))),
        }
    return out


def _distance(estimates: dict[str, dict[str, float]], published: dict[str, float]) -> dict:
    """Relative distance of posterior means to published values, and whether each is in the HDI."""
    rel = {k: (estimates[k]["mean"] - v) / v for k, v in published.items()}
    inside = {
        k: bool(estimates[k]["hdi_low"] <= v <= estimates[k]["hdi_high"])
        for k, v in published.items()
    }
    return {
        "published": published,
        "relative_difference": rel,
        "max_abs_relative_difference": float(max(abs(x) for x in rel.values())),
        "published_in_hdi": inside,
    }


def _cdnow_reference(
    bg_block: dict, gg_block: dict | None, time_unit: str, calibration_end: str | None
) -> dict:
    """The published CDNOW estimates, our distance to them, and our MLE on the published sample.

    The literature fits the 2,357-customer 1/10 sample; we fit all 23,570 customers, so a few
    percent of difference is sampling, not error. The sample MLE shows the likelihood itself
    reproduces the published numbers.
    """
    from uplift.value.datasets import (
        CDNOW_CALIBRATION_END,
        CDNOW_HOLDOUT_END,
        CDNOW_PUBLISHED_BGNBD,
        CDNOW_PUBLISHED_BGNBD_LL,
        CDNOW_PUBLISHED_GAMMA_GAMMA,
        load_cdnow,
    )

    out: dict[str, Any] = {
        "note": "published values are maximum-likelihood estimates on the 2,357-customer sample "
        "(FHL 2005; Fader & Hardie 2013); this run fits all 23,570 customers",
        "bgnbd": _distance(bg_block["parameters"], CDNOW_PUBLISHED_BGNBD),
        "published_bgnbd_loglik": CDNOW_PUBLISHED_BGNBD_LL,
    }
    if gg_block is not None:
        out["gamma_gamma"] = _distance(gg_block["parameters"], CDNOW_PUBLISHED_GAMMA_GAMMA)
    if time_unit == "weeks" and (calibration_end or CDNOW_CALIBRATION_END) == CDNOW_CALIBRATION_END:
        sample = rfm_summary(
            load_cdnow().sample(),
            calibration_end=CDNOW_CALIBRATION_END,
            holdout_end=CDNOW_HOLDOUT_END,
        )
        mle = BetaGeoModel.max_likelihood(sample)
        pub = CDNOW_PUBLISHED_BGNBD
        pred = bgnbd_expected_purchases(
            float(sample["duration_holdout"].iloc[0]),
            pub["r"],
            pub["alpha"],
            pub["a"],
            pub["b"],
            sample["frequency"].to_numpy(dtype=float),
            sample["recency"].to_numpy(dtype=float),
            sample["T"].to_numpy(dtype=float),
        ).sum()
        actual = float(sample["frequency_holdout"].sum())
        # the benchmark for our holdout error: the published model on the published sample
        out["sample_holdout_with_published_params"] = {
            "predicted_repeat_purchases": float(pred),
            "actual_repeat_purchases": actual,
            "relative_error": float((pred - actual) / actual),
        }
        out["sample_mle_bgnbd"] = mle
        out["sample_mle_bgnbd_max_abs_relative_difference"] = float(
            max(abs(mle[k] - v) / v for k, v in CDNOW_PUBLISHED_BGNBD.items())
        )
        if gg_block is not None:
            gg = GammaGammaModel.max_likelihood(sample)
            out["sample_mle_gamma_gamma"] = gg
    return out


def _holdout(
    bg: BetaGeoModel, summary: pd.DataFrame, prob: float, n_draws: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Predicted vs actual repeat purchases in the holdout, in total and by calibration frequency."""
    duration = float(summary["duration_holdout"].iloc[0])
    pred = bg.expected_purchases(summary, t=duration, n_draws=n_draws)
    draws = np.asarray(pred.transpose("sample", "customer").values, dtype=float)
    per_customer = draws.mean(axis=0)
    actual = summary["frequency_holdout"].to_numpy(dtype=float)
    total = _interval(draws.sum(axis=1), prob)
    act_total = float(actual.sum())
    freq = summary["frequency"].clip(upper=7).to_numpy()
    by_freq = []
    for f in np.unique(freq):
        m = freq == f
        by_freq.append(
            {
                "calibration_frequency": f"{int(f)}+" if f == 7 else str(int(f)),
                "customers": int(m.sum()),
                "predicted_mean": float(per_customer[m].mean()),
                "actual_mean": float(actual[m].mean()),
            }
        )
    rel = (total["mean"] - act_total) / act_total if act_total > 0 else float("nan")
    return {
        "duration": duration,
        "time_unit": summary.attrs.get("time_unit"),
        "predicted_repeat_purchases": total,
        "actual_repeat_purchases": act_total,
        "relative_error": float(rel),
        "actual_in_hdi": bool(total["hdi_low"] <= act_total <= total["hdi_high"]),
        "mean_abs_error_per_customer": float(np.mean(np.abs(per_customer - actual))),
        "by_calibration_frequency": by_freq,
    }, per_customer


def _segments(table: pd.DataFrame, cv: xr.Dataset, labels: list[str], prob: float) -> pd.DataFrame:
    """One row per value tier: size, actual / strategic value, class mix, retention worth.

    Totals are summed per posterior draw before summarising, so their intervals are the
    intervals of the tier's total (not a sum of per-customer intervals, which would be too wide).
    """
    clv = np.asarray(cv["clv"].transpose("sample", "customer").values, dtype=float)
    ret = np.asarray(
        ((1.0 - cv["p_alive"]) * cv["clv_if_alive"]).transpose("sample", "customer").values,
        dtype=float,
    )
    tier = table["tier"].astype(str).to_numpy()
    rows = []
    for lab in labels:
        m = tier == lab
        n = int(m.sum())
        sub = table[m]
        a_tot = clv[:, m].sum(axis=1) if n else np.zeros(clv.shape[0])
        r_tot = ret[:, m].sum(axis=1) if n else np.zeros(ret.shape[0])
        a_int = _interval(a_tot, prob)
        r_int = _interval(r_tot, prob)
        row: dict[str, Any] = {
            "segment": lab,
            "customers": n,
            "share_customers": n / len(table),
            "clv_min": float(sub["actual_value"].min()) if n else float("nan"),
            "clv_max": float(sub["actual_value"].max()) if n else float("nan"),
            "actual_value_total": a_int["mean"],
            "actual_value_total_hdi_low": a_int["hdi_low"],
            "actual_value_total_hdi_high": a_int["hdi_high"],
            "actual_value_mean": float(sub["actual_value"].mean()) if n else float("nan"),
            "strategic_value_total": float(sub["strategic_value"].sum()),
            "strategic_value_mean": float(sub["strategic_value"].mean()) if n else float("nan"),
            "share_of_value": 0.0,
            "p_alive_mean": float((1.0 - sub["p_churn"]).mean()) if n else float("nan"),
        }
        for c in ("keep", "grow", "shed"):
            row[f"n_{c}"] = int((sub["action"] == c).sum())
        row.update(
            {
                "retention_worth_total": r_int["mean"],
                "retention_worth_total_hdi_low": r_int["hdi_low"],
                "retention_worth_total_hdi_high": r_int["hdi_high"],
            }
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    total = out["actual_value_total"].sum()
    out["share_of_value"] = out["actual_value_total"] / total if total > 0 else np.nan
    return out


# ----------------------------------------------------------------------------------------------
# Plots and report
# ----------------------------------------------------------------------------------------------


def experiment_upside(cfg: Any, cv: Any) -> tuple[pd.DataFrame | None, pd.Series | None]:
    """Per-segment incremental value from an uplift run, and each CLV customer's segment.

    ``clv.uplift_path``: the ``uplift_by_segment.csv`` of an ``uplift`` run (its
    ``profit_per_treated`` rows); ``clv.segments_path``: a csv with ``customer_id, segment``
    using that run's segment labels. Neither given: no upside (strategic value = CLV).
    """
    from uplift.data.contract import DataValidationError
    from uplift.value.tiers import incremental_from_uplift_table

    if not cfg.uplift_path:
        return None, None
    if not cfg.segments_path:
        raise DataValidationError(
            "clv.uplift_path needs clv.segments_path: a csv with columns customer_id, segment "
            "(the segment of each customer in the uplift run's labels)"
        )
    for key in ("uplift_path", "segments_path"):
        if not Path(getattr(cfg, key)).exists():
            raise DataValidationError(f"clv.{key}={getattr(cfg, key)!r} does not exist")
    incremental = incremental_from_uplift_table(unescape_frame(pd.read_csv(cfg.uplift_path)))
    seg = unescape_frame(pd.read_csv(cfg.segments_path, dtype=str))
    missing = {"customer_id", "segment"} - set(seg.columns)
    if missing:
        raise DataValidationError(
            f"clv.segments_path lacks column(s) {sorted(missing)}; have {list(seg.columns)}"
        )
    lookup = dict(zip(seg["customer_id"].str.strip(), seg["segment"], strict=True))
    ids = pd.Index(cv["customer"].values)
    segments = pd.Series([lookup.get(str(i)) for i in ids], index=ids, dtype=object)
    if segments.isna().all():
        raise DataValidationError(
            f"no customer of the transactions appears in clv.segments_path (e.g. ids {list(ids[:3])} vs "
            f"{list(seg['customer_id'][:3])})"
        )
    return incremental, segments


@dataclass
class CustomerExtras:
    """Per-customer cost to serve and share of wallet for ``uplift clv`` (None: not given)."""

    cost_to_serve: pd.Series | float | None = None
    wallet: pd.DataFrame | None = None  # share_of_wallet(...) rows, indexed by customer id

    def headroom_worth(self) -> pd.Series | None:
        return None if self.wallet is None else self.wallet["headroom_worth"]


def customer_extras(cfg: Any, cv: Any) -> CustomerExtras:
    """``clv.cost_to_serve`` and ``clv.attributes_path`` (customer_id + cost_to_serve / wallet /
    categories) joined on the CLV customers' ids. Share of wallet compares the projected
    revenue over the horizon (expected purchases x expected spend) with the wallet."""
    from uplift.data.contract import DataValidationError
    from uplift.value.clv_join import normalise_ids
    from uplift.value.tactic_value import share_of_wallet

    out = CustomerExtras(cost_to_serve=cfg.cost_to_serve)
    if not cfg.attributes_path:
        return out
    path = Path(cfg.attributes_path)
    if not path.is_file():
        raise DataValidationError(f"clv.attributes_path={cfg.attributes_path!r} does not exist")
    attrs = unescape_frame(pd.read_csv(path, dtype={"customer_id": str}))
    known = {"cost_to_serve", "wallet", "categories"}
    if "customer_id" not in attrs.columns or not known & set(attrs.columns):
        raise DataValidationError(
            f"clv.attributes_path needs customer_id and at least one of {sorted(known)}; it has "
            f"{list(attrs.columns)[:10]}"
        )
    attrs.index = normalise_ids(attrs["customer_id"])
    ids = normalise_ids(pd.Index(cv["customer"].values))
    for col in known & set(attrs.columns):
        v = pd.to_numeric(attrs[col], errors="coerce")
        if v.isna().any() or (v < 0).any():
            raise DataValidationError(
                f"clv.attributes_path column {col!r} must be numbers >= 0 for every customer"
            )
    missing = ids.difference(attrs.index)
    if len(missing):
        raise DataValidationError(
            f"{len(missing)} CLV customer(s) are not in clv.attributes_path, e.g. "
            f"{list(missing[:5])}; give every customer a row"
        )
    a = attrs.reindex(ids)
    raw = pd.Index(cv["customer"].values)  # value_table's index: the same customers, in order
    if "cost_to_serve" in a.columns:
        out.cost_to_serve = pd.Series(a["cost_to_serve"].to_numpy(dtype=float), index=raw)
    if "wallet" in a.columns or "categories" in a.columns:
        projected = np.asarray((cv["expected_purchases"] * cv["expected_spend"]).mean("sample"))
        rev = pd.Series(projected, index=ids, dtype=float)
        try:
            out.wallet = share_of_wallet(
                rev,
                wallet=pd.Series(a["wallet"].to_numpy(dtype=float), index=ids)
                if "wallet" in a.columns
                else None,
                categories=pd.Series(a["categories"].to_numpy(dtype=float), index=ids)
                if "wallet" not in a.columns
                else None,
                n_categories=cfg.wallet_categories,
                margin=float(cfg.margin),
                capture=float(cfg.headroom_capture),
            ).rename(columns={"revenue": "projected_revenue"})
            out.wallet.index = raw
        except ValueError as e:
            raise DataValidationError(f"clv: {e}") from None
    return out


def retention_effect(cfg: Any) -> pd.DataFrame | None:
    """Per segment, how much the best retention arm lowers P(leave) (``mean``, ``sd``): the
    ``retention`` conversion rows of ``clv.uplift_path``; None when it has none."""
    table = unescape_frame(pd.read_csv(cfg.uplift_path))
    rows = table[(table.get("tactic") == "retention") & (table.get("metric") == "conversion")]
    if rows.empty or "sd" not in rows.columns:
        return None
    best = rows.sort_values("mean", ascending=False).drop_duplicates("segment")
    return best.set_index(best["segment"].astype(str))[["mean", "sd"]]


def _plots(customers: pd.DataFrame, thresholds: dict[str, float], out: Path, money: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = customers["clv_mean"].to_numpy(dtype=float)
    pos = v[v > 0]
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(pos):
        lo, hi = max(pos.min(), 1e-3), max(pos.max(), pos.min() * 10, 1e-2)
        bins = np.logspace(math.log10(lo), math.log10(hi), 60).tolist()
        ax.hist(pos, bins=bins, color="#4878a8")
    ax.set_xscale("log")
    for lab, t in thresholds.items():
        if t > 0:
            ax.axvline(t, color="#c0392b", ls="--", lw=1)
            ax.text(t, ax.get_ylim()[1] * 0.95, f" {lab}", color="#c0392b", va="top", fontsize=8)
    ax.set_xlabel(f"CLV per customer (posterior mean, {money}; log scale)")
    ax.set_ylabel("customers")
    n0 = int((v <= 0).sum())
    ax.set_title(
        "CLV distribution; dashed = tier lower bounds" + (f" ({n0} at 0 not shown)" if n0 else "")
    )
    atomic_savefig(fig, out / "clv_distribution.png")
    plt.close(fig)

    # value quadrant: no uplift available -> P(alive) vs value, labelled as such
    rng = np.random.default_rng(0)
    c = customers
    if len(c) > 6000:
        c = c.iloc[np.sort(rng.choice(len(c), 6000, replace=False))]
    colours = {"keep": "#4878a8", "grow": "#2e8b57", "shed": "#c0392b"}
    fig, ax = plt.subplots(figsize=(7, 5))
    x = np.maximum(c["clv_mean"].to_numpy(dtype=float), 1e-3)
    up = "upside" if "upside" in c.columns else "incremental_value"  # + headroom worth
    has_upside = up in c.columns and bool((customers[up] != 0).any())
    if has_upside:  # needs x value: what the best tactic adds vs what the customer is worth
        y = c[up].to_numpy(dtype=float)
        jitter = np.zeros(len(c))
    else:
        y = c["p_alive"].to_numpy(dtype=float)
        jitter = rng.uniform(-0.01, 0.01, len(c))
    for cls, col in colours.items():
        m = (c["class"] == cls).to_numpy()
        if m.any():
            ax.scatter(
                x[m],
                y[m] + jitter[m],
                s=4,
                alpha=0.4,
                color=col,
                label=f"{cls} ({int((customers['class'] == cls).sum())})",
            )
    ax.set_xscale("log")
    med = float(np.median(customers["clv_mean"]))
    if med > 0:
        ax.axvline(med, color="grey", lw=0.8)
    ax.set_xlabel(f"actual value = CLV ({money}; log scale)")
    if has_upside:
        ax.axhline(float(np.median(customers[up])), color="grey", lw=0.8)
        what = " + share-of-wallet headroom worth" if up == "upside" else ""
        ax.set_ylabel(f"upside = best tactic's incremental profit{what} ({money})")
        ax.set_title(
            "Needs x value: upside vs actual value (lines: medians). Spread on both axes = a\n"
            "differentiated base; a flat cloud = uniform value or uplift",
            fontsize=10,
        )
    else:
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_ylabel("P(alive) (BG/NBD; 1 for customers without a repeat purchase)")
        ax.set_title(
            "No experiment uplift given: P(alive) vs value, NOT upside vs value\n"
            "(lines: median CLV, P(alive) = 0.5; sample of customers)",
            fontsize=10,
        )
    ax.legend(loc="lower left", fontsize=8, markerscale=3)
    atomic_savefig(fig, out / "value_quadrant.png")
    plt.close(fig)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def _report(summary: dict[str, Any], segments: pd.DataFrame) -> str:
    s = summary
    tot = s["totals"]["clv"]
    lines = [
        f"# Customer lifetime value: {s['experiment']}",
        "",
        f"Data: {s['source']}; {s['n_transactions']:,} transaction rows, "
        f"{s['n_customers']:,} customers first buying by {s['calibration_end']}"
        + (
            f" ({s['n_first_after_calibration']:,} later first-time buyers left out)."
            if s["n_first_after_calibration"]
            else "."
        ),
        f"Model: BG/NBD purchases x Gamma-Gamma spend, fit by {s['method']}; CLV = margin "
        f"{s['settings']['margin']:g} x spend x discounted expected purchases over "
        f"{s['settings']['horizon']:g} {s['settings']['time_unit']} at {s['settings']['discount_rate']:.0%}/yr.",
        "",
        f"**Total CLV {_fmt(tot['mean'])}** ({s['hdi_prob']:.0%} HDI {_fmt(tot['hdi_low'])} to "
        f"{_fmt(tot['hdi_high'])}); mean per customer {_fmt(tot['mean'] / s['n_customers'])}. "
        f"Retention worth (value at stake in customers who may have left): "
        f"{_fmt(s['totals']['retention_worth']['mean'])}.",
        "",
    ]
    h = s.get("holdout")
    if h:
        p = h["predicted_repeat_purchases"]
        lines += [
            f"**Holdout check** ({h['duration']:.1f} {h['time_unit']} after calibration): predicted "
            f"{p['mean']:,.0f} repeat purchases (HDI {p['hdi_low']:,.0f} to {p['hdi_high']:,.0f}), "
            f"actual {h['actual_repeat_purchases']:,.0f}: relative error {h['relative_error']:+.1%}.",
            "",
        ]
    ref = s.get("cdnow_reference")
    if ref:
        lines += [
            f"**CDNOW published values**: max relative difference of the BG/NBD posterior means "
            f"{ref['bgnbd']['max_abs_relative_difference']:.1%} (full data vs the published sample)"
            + (
                f"; our MLE on the published sample: "
                f"{ref['sample_mle_bgnbd_max_abs_relative_difference']:.2%}."
                if "sample_mle_bgnbd_max_abs_relative_difference" in ref
                else "."
            ),
            "",
        ]
        sh = ref.get("sample_holdout_with_published_params")
        if sh:
            lines += [
                f"For scale: the published parameters on the published sample forecast the same "
                f"holdout with relative error {sh['relative_error']:+.1%} (BG/NBD under-forecasts "
                "CDNOW customers with 1-2 calibration repeats).",
                "",
            ]
    lines += [
        "## Value tiers",
        "",
        "| tier | customers | CLV range | total CLV | share | keep/grow/shed | retention worth |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for r in segments.itertuples():
        lines.append(
            f"| {r.segment} | {r.customers:,} | {_fmt(r.clv_min)} - {_fmt(r.clv_max)} | "
            f"{_fmt(r.actual_value_total)} | {r.share_of_value:.0%} | {r.n_keep}/{r.n_grow}/{r.n_shed} | "
            f"{_fmt(r.retention_worth_total)} |"
        )
    lines += [
        "",
        f"Note: {s['strategic_value_note']}",
        "",
        "Files: `customer_value.csv` (one row per customer), `segments.csv` (per tier), "
        "`clv_summary.json` (parameters, diagnostics, holdout), `clv_distribution.png`, "
        "`value_quadrant.png`.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


@dataclass
class ClvPlan:
    """The settings of a CLV run, checked before anything is read or fit."""

    settings: ClvSettings
    tiers: TierSpec
    rules: ClassificationRules
    method: str


@dataclass
class ClvRun:
    """What ``uplift clv`` computed, stage by stage; :meth:`to_dict` is ``clv_summary.json``."""

    config: AppConfig
    plan: ClvPlan
    tx: pd.DataFrame
    source: str
    summary: pd.DataFrame
    bg: BetaGeoModel
    gg: GammaGammaModel | None
    cv: xr.Dataset
    table: pd.DataFrame
    incremental: pd.Series | None
    customers: pd.DataFrame
    segments: pd.DataFrame
    holdout: dict[str, Any] | None
    seconds: dict[str, float] = field(default_factory=dict)
    cdnow_reference: dict[str, Any] | None = None
    started: float = field(default_factory=time.perf_counter)

    @cached_property
    def bg_block(self) -> dict[str, Any]:
        """BG/NBD parameters with intervals (clv_summary.json ``bgnbd``)."""
        return _param_block(self.bg, float(self.config.report.hdi_prob))

    @cached_property
    def gg_block(self) -> dict[str, Any] | None:
        """Gamma-Gamma parameters with intervals, None without amounts."""
        if self.gg is None:
            return None
        return _param_block(self.gg, float(self.config.report.hdi_prob))

    @property
    def money(self) -> str:
        return "currency" if self.gg is not None else "discounted purchases"

    def message(self) -> str:
        prob, settings = float(self.config.report.hdi_prob), self.plan.settings
        tot = self.totals["clv"]
        msg = (
            f"{len(self.summary):,} customers; total CLV {_fmt(tot['mean'])} "
            f"({prob:.0%} HDI {_fmt(tot['hdi_low'])} to {_fmt(tot['hdi_high'])}) over "
            f"{settings.horizon:g} {settings.time_unit}"
        )
        h = self.holdout
        if h is not None:
            msg += (
                f"; holdout repeat purchases predicted {h['predicted_repeat_purchases']['mean']:,.0f} "
                f"vs actual {h['actual_repeat_purchases']:,.0f} ({h['relative_error']:+.1%})"
            )
        return msg

    @cached_property
    def totals(self) -> dict[str, Any]:
        """Total CLV and retention worth with intervals, customers per class."""
        prob, cv = float(self.config.report.hdi_prob), self.cv
        clv_draws = np.asarray(cv["clv"].transpose("sample", "customer").values, dtype=float)
        ret_draws = np.asarray(
            ((1.0 - cv["p_alive"]) * cv["clv_if_alive"]).transpose("sample", "customer").values,
            dtype=float,
        )
        return {
            "clv": _interval(clv_draws.sum(axis=1), prob),
            "retention_worth": _interval(ret_draws.sum(axis=1), prob),
            "customers_by_class": {
                c: int((self.customers["class"] == c).sum()) for c in ("keep", "grow", "shed")
            },
        }

    def to_dict(self) -> dict[str, Any]:
        cfg, prob = self.config.clv, float(self.config.report.hdi_prob)
        settings, rules = self.plan.settings, self.plan.rules
        summary, tx = self.summary, self.tx
        out: dict[str, Any] = {
            "experiment": self.config.experiment_name,
            "dataset": cfg.dataset,
            "source": self.source,
            "n_transactions": len(tx),
            "n_customers": len(summary),
            "n_first_after_calibration": int(summary.attrs.get("n_first_after_calibration", 0)),
            "first_date": str(tx["date"].min().date()),
            "last_date": str(tx["date"].max().date()),
            "calibration_end": summary.attrs.get("calibration_end"),
            "holdout_end": summary.attrs.get("holdout_end"),
            "method": self.plan.method,
            "hdi_prob": prob,
            "settings": {
                "horizon": settings.horizon,
                "time_unit": settings.time_unit,
                "discount_rate": settings.discount_rate,
                "margin": settings.margin,
                "n_draws": settings.n_draws,
                "spend": "gamma_gamma"
                if self.gg is not None
                else "1 per purchase (no amount column)",
            },
            "bgnbd": self.bg_block,
            "gamma_gamma": self.gg_block,
            "totals": self.totals,
            # the CLV quantiles assign_tiers cuts at (pandas drops attrs through value_table's edits)
            "tier_thresholds": self.tier_thresholds,
            "strategic_value_note": NO_UPLIFT_NOTE
            if self.incremental is None
            else f"strategic value = CLV + the best tactic's posterior profit per treated customer "
            f"(uplift_by_segment.csv of {cfg.uplift_path}, segment of each customer from {cfg.segments_path})",
            "rules": {
                "shed_below": rules.shed_below,
                "shed_probability": rules.shed_probability,
                "grow_min_upside": rules.grow_min_upside,
            },
            "holdout": self.holdout,
        }
        if self.cdnow_reference is not None:
            out["cdnow_reference"] = self.cdnow_reference
        out["seconds"] = {k: round(v, 2) for k, v in self.seconds.items()}
        out["message"] = self.message()
        out["files"] = list(CLV_FILES)
        return out

    @cached_property
    def tier_thresholds(self) -> dict[str, float]:
        """The CLV quantiles the tiers are cut at."""
        tiers = self.plan.tiers
        return {
            lab: float(v)
            for lab, v in zip(
                tiers.labels[1:],
                np.quantile(self.table["actual_value"].to_numpy(dtype=float), tiers.cut_points),
                strict=True,
            )
        }


#: what ``uplift clv`` writes
CLV_FILES = (
    "customer_value.csv",
    "segments.csv",
    "clv_summary.json",
    "clv_distribution.png",
    "value_quadrant.png",
    "clv_report.md",
)


def clv_plan(cfg: ClvConfig) -> ClvPlan:
    """Settings first: a bad horizon or tier spec should not cost a model fit (``cfg.method``
    is already one of the ``ClvMethod`` choices)."""
    return ClvPlan(
        ClvSettings(
            horizon=float(cfg.horizon),
            time_unit=str(cfg.time_unit),
            discount_rate=float(cfg.discount_rate),
            margin=float(cfg.margin),
        ),
        TierSpec(
            cut_points=tuple(float(c) for c in cfg.tier_cut_points),
            labels=tuple(str(lab) for lab in cfg.tier_labels),
        ),
        ClassificationRules(
            shed_below=float(cfg.shed_below),
            shed_probability=float(cfg.shed_probability),
            grow_min_upside=float(cfg.grow_min_upside),
        ),
        str(cfg.method),
    )


def customer_table(
    summary: pd.DataFrame,
    cv: xr.Dataset,
    table: pd.DataFrame,
    pred_hold: np.ndarray | None,
    has_amount: bool,
) -> pd.DataFrame:
    """``customer_value.csv``: one row per customer, highest CLV first."""

    def mean_of(var: str) -> np.ndarray:
        return np.asarray(cv[var].mean("sample").values, dtype=float)

    customers = pd.DataFrame(
        {
            "customer_id": summary.index.to_numpy(),
            "clv_mean": table["actual_value"].to_numpy(),
            "clv_hdi_low": table["actual_value_hdi_low"].to_numpy(),
            "clv_hdi_high": table["actual_value_hdi_high"].to_numpy(),
            "p_alive": mean_of("p_alive"),
            "expected_purchases": mean_of("expected_purchases"),
            "expected_spend": mean_of("expected_spend"),
            "frequency": summary["frequency"].to_numpy(),
            "recency": summary["recency"].to_numpy(),
            "T": summary["T"].to_numpy(),
            "monetary_value": summary["monetary_value"].to_numpy()
            if has_amount
            else np.full(len(summary), np.nan),
            "tier": table["tier"].astype(str).to_numpy(),
            "class": table["action"].to_numpy(),
            "reason": table["reason"].to_numpy(),
            "strategic_value": table["strategic_value"].to_numpy(),
            "incremental_value": table["incremental_value"].to_numpy(),
            "prob_strategic_below_shed": table["prob_strategic_below_shed"].to_numpy(),
            "retention_worth": table["retention_worth"].to_numpy(),
            "retention_worth_hdi_low": table["retention_worth_hdi_low"].to_numpy(),
            "retention_worth_hdi_high": table["retention_worth_hdi_high"].to_numpy(),
        }
    )
    optional = [
        "cost_to_serve",
        "projected_revenue",
        "wallet",
        "share_of_wallet",
        "headroom",
        "headroom_worth",
        "upside",
        "retention_ceiling",
        "retention_ceiling_hdi_low",
        "retention_ceiling_hdi_high",
    ]
    for col in optional:
        if col in table.columns:
            customers[col] = table[col].to_numpy()
    if pred_hold is not None:
        customers["expected_holdout_purchases"] = pred_hold
        customers["frequency_holdout"] = summary["frequency_holdout"].to_numpy()
    return customers.sort_values("clv_mean", ascending=False, kind="stable")


def value_customers(config: AppConfig) -> ClvRun:
    """Read transactions, fit BG/NBD (and Gamma-Gamma with amounts), value every customer."""
    t_start = time.perf_counter()
    cfg, prob = config.clv, float(config.report.hdi_prob)
    plan = clv_plan(cfg)
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    raw, columns, source = load_transactions(cfg)
    tx = validate_transactions(raw, columns, date_format=cfg.date_format)
    has_amount = "amount" in tx.columns
    summary = rfm_summary(
        tx,
        calibration_end=cfg.calibration_end,
        holdout_end=cfg.holdout_end,
        time_unit=plan.settings.time_unit,  # type: ignore[arg-type]
        columns=TransactionColumns(amount="amount" if has_amount else None),
    )
    seconds["load_and_summarise"] = time.perf_counter() - t

    t = time.perf_counter()
    bg = BetaGeoModel(method=plan.method, sampler=config.sampler).fit(summary)  # type: ignore[arg-type]
    seconds["fit_bgnbd"] = time.perf_counter() - t
    gg: GammaGammaModel | None = None
    if has_amount:
        t = time.perf_counter()
        gg = GammaGammaModel(method=plan.method, sampler=config.sampler).fit(summary)  # type: ignore[arg-type]
        seconds["fit_gamma_gamma"] = time.perf_counter() - t

    t = time.perf_counter()
    # without amounts a purchase is worth 1 unit: CLV is then in discounted purchases
    cv = customer_value(bg, gg if gg is not None else 1.0, summary, plan.settings)
    incremental, segments = experiment_upside(cfg, cv)
    extras = customer_extras(cfg, cv)
    try:
        table = value_table(
            cv,
            incremental=incremental,
            segments=segments,
            tiers=plan.tiers,
            rules=plan.rules,
            hdi_prob=prob,
            cost_to_serve=extras.cost_to_serve,
            headroom_worth=extras.headroom_worth(),
            retention_effect=retention_effect(cfg) if segments is not None else None,
            seed=int(config.sampler.seed),
        )
    except ValueError as e:
        from uplift.data.contract import DataValidationError

        raise DataValidationError(str(e)) from None
    if extras.wallet is not None:
        table = pd.concat([table, extras.wallet.drop(columns="headroom_worth")], axis=1)
    seconds["customer_value"] = time.perf_counter() - t

    holdout: dict[str, Any] | None = None
    pred_hold: np.ndarray | None = None
    if cfg.holdout_end is not None:
        holdout, pred_hold = _holdout(bg, summary, prob, plan.settings.n_draws)
    run = ClvRun(
        config,
        plan,
        tx,
        source,
        summary,
        bg,
        gg,
        cv,
        table,
        incremental,
        customer_table(summary, cv, table, pred_hold if holdout is not None else None, has_amount),
        _segments(table, cv, list(plan.tiers.labels), prob),
        holdout,
        seconds,
        started=t_start,
    )
    if cfg.dataset is not None and str(cfg.dataset).lower() == "cdnow":
        blocks = run.bg_block, run.gg_block  # computed once, also read by to_dict
        t = time.perf_counter()
        run.cdnow_reference = _cdnow_reference(
            *blocks,
            plan.settings.time_unit,
            cfg.calibration_end,
        )
        seconds["cdnow_reference"] = time.perf_counter() - t
    return run


def write_clv_outputs(run: ClvRun, output_dir: Path) -> dict[str, Any]:
    """Every CLV artifact from ``run``, ``clv_summary.json`` last; returns that summary."""
    seconds = run.seconds
    t = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(run.customers, output_dir / "customer_value.csv")
    atomic_write_csv(run.segments, output_dir / "segments.csv")
    _plots(run.customers, run.tier_thresholds, output_dir, run.money)
    seconds["write"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - run.started
    out = run.to_dict()
    atomic_write_text(_report(out, run.segments), output_dir / "clv_report.md")
    atomic_write_json(out, output_dir / "clv_summary.json")
    return out


def run_clv(config: AppConfig, output_dir: Path) -> dict[str, Any]:
    """Value every customer from their transactions and write the CLV artifacts to ``output_dir``.

    Returns the summary (also written to ``clv_summary.json``) with a one-line ``message``.
    Input problems raise :class:`~uplift.data.contract.DataValidationError` or ``ValueError``
    naming the column or setting, before any model is fit.
    """
    return write_clv_outputs(value_customers(config), Path(output_dir))
