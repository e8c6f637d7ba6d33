# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Wave to wave: every campaign makes the next one smarter
#
# Three waves of the learning loop on synthetic data with **known truth**:
#
# 1. **design** wave 1 (`design_table`) and run it as a randomized experiment;
# 2. **fit + plan** wave 1 (`uplift.run`), and assign wave 2 from its Thompson shares
#    (`waves.assign_wave`: what `uplift next-wave` writes, with logged probabilities);
# 3. **wave 2 with the prior from wave 1** (`model.prior_from=<wave 1 run>`): the last posterior
#    is the next prior, so wave 2's fit knows what wave 1 taught;
# 4. **evaluate** wave 1's policy on wave 2 (`waves.evaluate_wave_policy`: what
#    `uplift evaluate-policy` writes), against its true value;
# 5. **wave 3** the same way, and the **realised regret** of each wave's plan: the share of the
#    oracle's true profit it loses.
#
# `UPLIFT_QUICK=1` uses short chains (what the tests do, executing it as a notebook).

# %%
import dataclasses
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from IPython.display import display

import uplift
from uplift import waves
from uplift.data.synthetic import generate
from uplift.experiment import design_table
from uplift.experiment.assignment import HOLDOUT
from uplift.tactics import ArmMap

QUICK = os.environ.get("UPLIFT_QUICK") == "1"
OUT = Path(os.environ.get("UPLIFT_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="uplift-waves-"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 20261203
MARGIN = 0.4
ARMS = {
    "control": {"tactic": "control", "cost": 0.0},
    "cross_sell_email": {"tactic": "cross_sell", "cost": 1.0},
    "loyalty_points": {"tactic": "frequency", "cost": 2.5},
}
arm_map = ArmMap.from_mapping(ARMS)
truth = generate(arm_map, n_customers=100, seed=7).truth  # the truth does not depend on n
truth["value"] = MARGIN * truth["revenue_per_conversion"]
RUN = [
    "data=csv",
    "data.columns.segments=[value_tier,needs]",
    "tactics=custom",
    *[f"+tactics.arms.{a}={{tactic: {s['tactic']}, cost: {s['cost']}}}" for a, s in ARMS.items()],
    f"value.margin={MARGIN}",
    "optimize.budget=3000",
    "report.plots=false",
    f"sampler.seed={SEED}",
    "evaluate.crossfit_folds=0",
]
if QUICK:
    RUN += ["sampler=fast", "optimize.allow_unconverged=true", "optimize.frontier.enabled=false"]
display(truth.pivot_table(index="segment", columns="arm", values="true_uplift").round(3))

# %% [markdown]
# ## 1. Design wave 1
# Customers per (segment, arm) for an absolute uplift of 3 points at 80% power, from the true
# control rates (in practice: last year's control group). Every segment gets what the largest
# need asks for, up to 2,000 customers.

# %%
segments = (
    truth[truth["arm"] == "control"][["segment", "p_control"]]
    .rename(columns={"p_control": "baseline"})
    .assign(customers=20_000)
)
design = design_table(segments, arm_map, 0.03, alpha=0.05, power=0.8)
size = design.groupby("segment")["segment_required"].first().clip(upper=2_000)
weights = design.groupby("arm")["share"].mean().to_dict()
print(f"DESIGN: {int(size.sum()):,} customers in {len(size)} segments; arm weights {weights}")

# %% [markdown]
# ## 2. Wave 1: a randomized experiment, fit and plan
# Customers by salted hashing within their segment at the design weights (`uplift.experiment.
# assign` behind `waves.assign_wave`); conversions from the truth.


# %%
def customers_for(wave: int, n_per_segment: pd.Series) -> pd.DataFrame:
    seg = np.repeat(n_per_segment.index.to_numpy(), n_per_segment.to_numpy())
    tier, need = zip(*(s.split("/") for s in seg), strict=True)
    start = wave * 1_000_000
    return pd.DataFrame(
        {
            "customer_id": np.arange(start, start + len(seg)),
            "value_tier": tier,
            "needs": need,
            "segment": seg,
        }
    )


def outcomes(table: pd.DataFrame, wave: int) -> pd.DataFrame:
    """Conversions (and revenue) of a wave's customers from the true rates; the global holdout
    is left alone, as the control."""
    arm = table["arm"].where(table["arm"] != HOLDOUT, "control")
    t = truth.set_index(["arm", "segment"])
    key = pd.MultiIndex.from_arrays([arm, table["segment"]])
    rng = np.random.default_rng([SEED, wave])
    converted = (rng.random(len(table)) < t["p_treated"].reindex(key).to_numpy()).astype(int)
    revenue = np.where(converted == 1, t["revenue_per_conversion"].reindex(key).to_numpy(), 0.0)
    return table.assign(outcome=converted, converted=converted, revenue=revenue)


def fit(wave: int, rows: pd.DataFrame, *extra: str):
    """``uplift`` on the wave's rows (holdout customers as control)."""
    path = OUT / f"wave{wave}.csv"
    data = rows.assign(arm=rows["arm"].where(rows["arm"] != HOLDOUT, "control"))
    data[["customer_id", "value_tier", "needs", "arm", "converted", "revenue"]].to_csv(
        path, index=False
    )
    config = uplift.compose_config([*RUN, f"data.path={path}", *extra])
    return uplift.run(config, OUT / f"run{wave}")


uniform = pd.DataFrame({"segment": size.index.repeat(len(ARMS)), "arm": list(ARMS) * len(size)})
uniform["share"] = uniform["arm"].map(weights)
people = customers_for(1, size)
wave1 = outcomes(
    waves.assign_wave(people, uniform, salt="loop:wave1", wave=1, control="control"), 1
).merge(people[["customer_id", "value_tier", "needs"]], on="customer_id")
run1 = fit(1, wave1, *[f"+health.expected_split.{a}={w}" for a, w in weights.items()])
print(f"WAVE 1: {len(wave1):,} customers; plan spends {run1.allocation.total_spend:,.0f}")
display(run1.allocation.table.query("customers > 0")[["segment", "arm", "customers"]])

# %% [markdown]
# ## 3. Plan the next wave: Thompson shares, a reproducible assignment
# Each (segment, arm) gets a share of wave 2 in proportion to the posterior probability that it
# is the most profitable (at least 5% each, so no arm stops learning), 5% of customers are a
# global holdout, and every row logs the probability of its arm, for step 5.

# %%
saved1 = uplift.load_run(OUT / "run1")
people2 = customers_for(2, size)
wave2 = waves.assign_wave(
    waves.customer_list(people2, saved1.config),
    waves.wave_shares(saved1, 0.05),
    salt="loop:wave2",
    wave=2,
    control="control",
    holdout_share=0.05,
)
wave2.to_csv(OUT / "next_wave_assignment.csv", index=False)
print(f"NEXT WAVE: {len(wave2):,} customers assigned")
display(wave2.pivot_table(index="segment", columns="arm", values="probability").round(3).head())

# %% [markdown]
# ## 4. Wave 2, fit with the prior from wave 1
# `model.prior_from` makes wave 1's posterior of every segment's baseline and effect (moment
# matched, jointly) the prior of wave 2's fit, widened by `model.prior_forget` (default 1.25: wave
# 1 counts as 0.8 of its data, for drift). Wave 2's shares were adaptive, so the equal-split
# sample-ratio check does not apply (`health.override=true`): the logged probabilities are the
# record.

# %%
wave2 = outcomes(wave2, 2).merge(people2[["customer_id", "value_tier", "needs"]], on="customer_id")
run2 = fit(2, wave2, "health.override=true", f"model.prior_from={OUT / 'run1'}")
print(
    f"WAVE 2: fit from wave 1's posterior ({run2.fits['cross_sell'].model.model_config()['prior_from']['source']})"
)

# %% [markdown]
# ## 5. Wave 1's policy, valued on wave 2
# Off-policy (IPW, SNIPW, DM, DR) from wave 2's logged probabilities, in the run's money, next to
# the plan's own forecast and the true value from the known rates.


# %%
def true_value(saved, rows: pd.DataFrame) -> float:
    """True incremental profit per randomized customer of a run's allocation policy."""
    rows = rows[rows["arm"] != HOLDOUT]
    p = truth.set_index(["arm", "segment"])["p_treated"]
    alloc = saved.allocation.assign(
        prob=saved.allocation["customers"] / saved.allocation["eligible_customers"]
    )
    total = 0.0
    for seg, n in rows["segment"].value_counts().items():
        for r in alloc[alloc["segment"] == seg].itertuples():
            gain = p.loc[(r.arm, seg)] - p.loc[("control", seg)]
            total += (
                n * r.prob * (saved.prepared.values[r.tactic][seg] * gain - ARMS[r.arm]["cost"])
            )
    return total / len(rows)


wave2.to_csv(OUT / "wave2_outcomes.csv", index=False)
cfg = uplift.compose_config(
    [f"wave.run={OUT / 'run1'}", f"wave.outcomes={OUT / 'wave2_outcomes.csv'}"]
)
waves.evaluate_wave_policy(cfg, OUT / "policy2", run=saved1)
policy = pd.read_csv(OUT / "policy2" / "policy_value.csv")
display(policy[["estimator", "estimate", "ci_low", "ci_high", "planned_per_customer"]].round(4))
dr = policy.set_index("estimator").loc["dr"]
print(
    f"POLICY: wave 1's plan on wave 2: DR {dr['estimate']:.3f} per customer "
    f"({dr['ci_low']:.3f}..{dr['ci_high']:.3f}), true {true_value(saved1, wave2):.3f}"
)

# %% [markdown]
# ## 6. Wave 3, and the realised regret of each wave
# Realised regret of a wave: per customer, the true profit of the best arm for their segment
# (doing nothing included) minus the true profit of the arm they got; what exploring cost. Wave
# 1 is uniform; waves 2 and 3 follow the last posterior, which carries every earlier wave. The
# plan's regret is the share of the oracle's true profit the budget plan after each wave loses
# (the same optimizer with the true uplifts and values, on the same customers and budget).

# %%
saved2 = uplift.load_run(OUT / "run2")
people3 = customers_for(3, size)
wave3 = waves.assign_wave(
    waves.customer_list(people3, saved2.config),
    waves.wave_shares(saved2, 0.05),
    salt="loop:wave3",
    wave=3,
    control="control",
    holdout_share=0.05,
)
wave3 = outcomes(wave3, 3).merge(people3[["customer_id", "value_tier", "needs"]], on="customer_id")
run3 = fit(3, wave3, "health.override=true", f"model.prior_from={OUT / 'run2'}")

gain = truth.assign(profit=truth["true_uplift"] * truth["value"] - truth["cost"])
best = gain.groupby("segment")["profit"].max().clip(lower=0.0)


def realised_regret(rows: pd.DataFrame) -> float:
    got = gain.set_index(["arm", "segment"])["profit"].reindex(
        pd.MultiIndex.from_arrays([rows["arm"], rows["segment"]])
    )
    return float((rows["segment"].map(best).to_numpy() - got.fillna(0.0).to_numpy()).mean())


def plan_profit(table: pd.DataFrame) -> float:
    t = table[table["customers"] > 0].merge(truth, on=["arm", "segment"])
    return float((t["customers"] * (t["true_uplift"] * t["value"] - t["cost"])).sum())


def plan_regret(folder: Path) -> float:
    saved = uplift.load_run(folder)
    draws = {}
    for tactic, d in saved.draws.items():
        up = truth[truth["tactic"] == tactic].pivot(
            index="arm", columns="segment", values="true_uplift"
        )
        up = up.reindex(index=d["arm"].values, columns=d["segment"].values)
        draws[tactic] = xr.DataArray(up.to_numpy()[None], dims=d.dims, coords=d.coords)
    value = truth.drop_duplicates("segment").set_index("segment")["value"]
    values = {k: value.reindex(v.index) for k, v in saved.prepared.values.items()}
    oracle = dataclasses.replace(
        saved, draws=draws, prepared=dataclasses.replace(saved.prepared, values=values)
    )
    return 1.0 - plan_profit(saved.plan().table) / plan_profit(oracle.plan().table)


regrets = pd.DataFrame(
    {
        "realised regret per customer": [realised_regret(w) for w in (wave1, wave2, wave3)],
        "plan regret (share of oracle)": [plan_regret(OUT / f"run{w}") for w in (1, 2, 3)],
    },
    index=pd.Index([1, 2, 3], name="wave"),
)
display(regrets.round(4))
print("REGRET: " + " -> ".join(f"wave {w}: {r:.3f}" for w, r in regrets.iloc[:, 0].items()))
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(regrets.index, regrets.iloc[:, 0].to_numpy(), marker="o")
ax.set_xticks(list(regrets.index))
ax.set_xlabel("wave")
ax.set_ylabel("true profit lost per customer")
ax.set_title("Realised regret per wave")
ax.set_ylim(bottom=0)
plt.show()
