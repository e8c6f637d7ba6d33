"""CDNOW benchmark for the CLV models: published parameters, holdout accuracy, fit time.

Fits BG/NBD (and Gamma-Gamma) on the first 39 weeks (1997-01-01 .. 1997-09-30) and predicts each
customer's repeat purchases in weeks 40-78 (to 1998-06-30), as in Fader, Hardie & Lee (2005).
Prints, for the 2,357-customer sample the published values come from and for all 23,570
customers: estimates vs published (relative difference and distance in posterior sds), the
maximum-likelihood check, aggregate and by-frequency holdout error, and fit seconds.

    .venv/bin/python bench/clv_cdnow.py                 # Laplace (seconds)
    .venv/bin/python bench/clv_cdnow.py --method nuts   # NUTS (nutpie), 2 chains x 1000 draws
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from uplift.models import SamplerSettings
from uplift.value.clv import BetaGeoModel, ClvSettings, GammaGammaModel, customer_value
from uplift.value.datasets import (
    CDNOW_CALIBRATION_END,
    CDNOW_HOLDOUT_END,
    CDNOW_PUBLISHED_BGNBD,
    CDNOW_PUBLISHED_BGNBD_LL,
    CDNOW_PUBLISHED_GAMMA_GAMMA,
    load_cdnow,
)
from uplift.value.transactions import rfm_summary


def _compare(
    post: pd.DataFrame, mle: dict[str, float], published: dict[str, float]
) -> pd.DataFrame:
    rows = []
    for k, v in published.items():
        m, sd = post.loc[k, "mean"], post.loc[k, "sd"]
        rows.append(
            {
                "param": k,
                "published": v,
                "mle": round(mle[k], 4),
                "post_mean": round(m, 4),
                "post_sd": round(sd, 4),
                "hdi94": f"[{post.loc[k, 'hdi_low']:.3f}, {post.loc[k, 'hdi_high']:.3f}]",
                "rel_diff_%": round(100 * (m / v - 1), 2),
                "z (|diff|/sd)": round(abs(m - v) / sd, 2),
            }
        )
    return pd.DataFrame(rows).set_index("param")


def run(label: str, tx: pd.DataFrame, method: str, draws: int, published_ll: float | None) -> None:
    s = rfm_summary(tx, calibration_end=CDNOW_CALIBRATION_END, holdout_end=CDNOW_HOLDOUT_END)
    print(
        f"\n=== {label}: {len(s):,} customers, {int(s['frequency'].sum()):,} calibration repeat "
        f"purchases, {int(s['frequency_holdout'].sum()):,} in the holdout ==="
    )
    sampler = SamplerSettings(draws=draws, tune=draws, chains=2, seed=20261123)
    t0 = time.perf_counter()
    mle = BetaGeoModel.max_likelihood(s)
    t_mle = time.perf_counter() - t0
    bg = BetaGeoModel(method=method, sampler=sampler).fit(s)
    gg = GammaGammaModel(method=method, sampler=sampler).fit(s)
    post = bg.param_summary()
    table = _compare(post, mle, CDNOW_PUBLISHED_BGNBD)
    print(
        f"BG/NBD ({method}, {bg.fit_seconds:.1f} s incl. compile; {bg.idata.attrs['clv_n_patterns']:,} "
        f"unique (x, t_x, T) patterns; MLE {t_mle:.1f} s, loglik {mle['loglik']:.3f}"
        + (f" vs published {published_ll})" if published_ll is not None else ")")
    )
    print(table.to_string())
    print(
        f"max |relative difference| = {table['rel_diff_%'].abs().max():.2f}%, "
        f"max z = {table['z (|diff|/sd)'].max():.2f}, "
        f"Euclidean distance in log-parameters = "
        f"{np.sqrt(sum(np.log(post.loc[k, 'mean'] / v) ** 2 for k, v in CDNOW_PUBLISHED_BGNBD.items())):.4f}"
    )
    diag = bg.diagnostics()
    if diag is not None:
        print(f"diagnostics: {diag.to_dict()}")

    gmle = GammaGammaModel.max_likelihood(s)
    print(
        f"\nGamma-Gamma ({gg.fit_seconds:.1f} s; {gg.idata.attrs['clv_n_used']:,} repeat customers; "
        f"MLE loglik {gmle['loglik']:.3f})"
    )
    print(_compare(gg.param_summary(), gmle, CDNOW_PUBLISHED_GAMMA_GAMMA).to_string())

    t0 = time.perf_counter()
    ey = bg.expected_purchases(s, 39.0, n_draws=200)
    t_pred = time.perf_counter() - t0
    pred = ey.mean("sample").to_numpy()
    tot = ey.sum("customer").to_numpy()
    actual = s["frequency_holdout"].to_numpy()
    lo, hi = np.quantile(tot, [0.03, 0.97])
    print(
        f"\nholdout weeks 40-78: predicted {pred.sum():,.0f} (94% interval from parameter "
        f"uncertainty {lo:,.0f}-{hi:,.0f}) vs actual {actual.sum():,} repeat purchases: "
        f"error {100 * (pred.sum() / actual.sum() - 1):+.1f}%; per-customer MAE "
        f"{np.abs(pred - actual).mean():.3f}, RMSE {np.sqrt(((pred - actual) ** 2).mean()):.3f}, "
        f"corr {np.corrcoef(pred, actual)[0, 1]:.3f} ({t_pred:.2f} s for 200 draws)"
    )
    grp = np.minimum(s["frequency"].to_numpy(), 7)
    by = (
        pd.DataFrame({"x (calibration)": grp, "customers": 1, "predicted": pred, "actual": actual})
        .groupby("x (calibration)")
        .agg({"customers": "sum", "predicted": "mean", "actual": "mean"})
    )
    by["error"] = by["predicted"] - by["actual"]
    by.index = [str(i) if i < 7 else "7+" for i in by.index]
    print("mean holdout purchases per customer by calibration frequency:")
    print(by.round(3).to_string())

    t0 = time.perf_counter()
    ds = customer_value(
        bg, gg, s, ClvSettings(horizon=52, discount_rate=0.10, margin=0.3, n_draws=200)
    )
    clv = ds["clv"].mean("sample")
    print(
        f"\n52-week CLV (margin 30%, 10%/yr): mean ${float(clv.mean()):.2f}, total "
        f"${float(clv.sum()):,.0f}, top 5% of customers hold "
        f"{float(np.sort(clv.values)[-len(clv) // 20 :].sum() / clv.sum()):.0%}; "
        f"{time.perf_counter() - t0:.1f} s for 200 draws x {len(s):,} customers"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["laplace", "nuts"], default="laplace")
    parser.add_argument("--draws", type=int, default=1000, help="NUTS draws (and tune) per chain")
    parser.add_argument("--sample-only", action="store_true", help="skip the full 23,570 customers")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data = load_cdnow()
    run(
        "CDNOW 1/10 sample (the published fit)",
        data.sample(),
        args.method,
        args.draws,
        CDNOW_PUBLISHED_BGNBD_LL,
    )
    if not args.sample_only:
        run(
            "CDNOW all customers (published values are the sample's)",
            data.transactions,
            args.method,
            args.draws,
            None,
        )


if __name__ == "__main__":
    main()
