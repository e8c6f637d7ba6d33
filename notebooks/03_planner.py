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
# # For planners: open a finished run, compare two budgets, export the customer list
#
# A run's posteriors are the optimizer's input, so asking "what if the budget were 30,000?"
# costs a solve (milliseconds), not a refit. This notebook:
#
# 1. loads a finished run folder (`uplift.load_run`);
# 2. compares the plan at two budgets: spend, expected profit with its interval, chance of a loss,
#    and where the extra money goes;
# 3. exports the chosen plan's customer list (the columns of `targets.csv`) for the campaign tool.
#
# Point `UPLIFT_RUN` at a run folder (for example `outputs/synthetic_demo/<timestamp>`); without it
# the notebook makes a quick demo run first. Open it with
# `jupytext --to notebook notebooks/03_planner.py`.

# %%
import io
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

import uplift


def show(fig) -> None:
    """A figure inline, as PNG (uplift draws its own files on matplotlib's Agg backend, which
    does not display figures by itself)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


OUT = Path(os.environ.get("UPLIFT_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="uplift-planner-"))
OUT.mkdir(parents=True, exist_ok=True)
RUN = os.environ.get("UPLIFT_RUN")
if RUN is None:  # no run at hand: make one (short chains when UPLIFT_QUICK=1, as in the tests)
    overrides = ["experiment=synthetic_demo"]
    if os.environ.get("UPLIFT_QUICK") == "1":
        overrides += [
            "data.synthetic.n_customers=30000",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "evaluate.crossfit_folds=0",
            "report.plots=false",
        ]
    RUN = OUT / "run"
    uplift.run(uplift.compose_config(overrides), RUN)
run = uplift.load_run(RUN)
print(f"run {run.config.experiment_name!r}: budget {run.config.optimize.budget:,.0f}")

# %% [markdown]
# ## The plan as run
# Spend and expected incremental profit per tactic and arm (from `allocation.csv`).

# %%
plan_now = run.plan()  # the run's own settings: the same plan as its allocation.csv
by_arm = (
    plan_now.table.groupby(["tactic", "arm"])[["customers", "spend", "expected_incremental_profit"]]
    .sum()
    .round(0)
)
display(by_arm[by_arm["customers"] > 0])

# %% [markdown]
# ## Two budgets side by side
# The run's budget and half as much again. `prob_loss` is the posterior chance that the plan
# loses money; `binding_constraints` says which rules stopped the optimizer.

# %%
low = run.config.optimize.budget
high = 1.5 * low
compare = run.compare([low, high])
display(compare.round(3))
extra = compare["expected_incremental_profit"].diff().iloc[1]
print(f"the extra {high - low:,.0f} of budget is expected to return {extra:,.0f} of profit")

# %% [markdown]
# Where the extra budget goes: change in spend per tactic and arm.

# %%
plan_high = run.plan(budget=high)


def spend_by_arm(plan) -> pd.Series:
    return plan.table.groupby(["tactic", "arm"])["spend"].sum()


moved = pd.DataFrame(
    {"spend_at_low": spend_by_arm(plan_now), "spend_at_high": spend_by_arm(plan_high)}
)
moved["change"] = moved["spend_at_high"] - moved["spend_at_low"]
display(moved.round(0))
fig, ax = plt.subplots(figsize=(7, 3.5))
moved[["spend_at_low", "spend_at_high"]].plot.barh(ax=ax)
ax.set_xlabel("spend")
ax.set_ylabel("")
ax.set_title(f"Spend per offer at budget {low:,.0f} vs {high:,.0f}")
plt.tight_layout()
show(fig)

# %% [markdown]
# ## Export the customer list
# One row per selected customer: `customer_id, segment, arm, tactic,
# expected_incremental_profit, prob_profit_positive, rank` (rank 1 = the most profitable), as in
# the run's `targets.csv`; counts per segment and arm match the plan exactly.

# %%
path = run.export_targets(plan_high, OUT / f"targets_budget_{high:.0f}.csv")
targets = pd.read_csv(path)
print(f"TARGETS: {len(targets):,} customers written to {path.name}")
display(targets.head(10))
