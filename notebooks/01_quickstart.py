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
# # Quickstart: from an experiment to a budget allocation
#
# This notebook runs the same pipeline as `uplift experiment=synthetic_demo`, from Python, on the
# demo's all-conversion generator (`data.synthetic.outcomes=conversion`: every tactic shifts the
# chance to buy; the default demo fits each tactic on its own outcome, see the README's Presets):
#
# 1. a synthetic experiment with **known truth** (six tactics plus control, 12 segments);
# 2. one hierarchical Bayesian conversion-uplift model per tactic, fit on cell sufficient statistics;
# 3. value per conversion from observed revenue and margin;
# 4. a budget allocation over (segment, tactic) that maximises expected incremental profit;
# 5. a check of all of it against the truth.
#
# Open it with `jupytext --to notebook notebooks/01_quickstart.py` (tables and figures show
# inline) or run it as a script. Set `UPLIFT_QUICK=1` for a fast run with short chains (what the
# test suite does, executing it as a notebook).

# %%
import io
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, Markdown, display

import uplift
from uplift.optimize import AllocationProblem
from uplift.pipeline import build_allocator
from uplift.report.truth import true_profit_per_customer
from uplift.value import build_value_model


def show(fig) -> None:
    """A figure inline, as PNG (uplift draws its own files on matplotlib's Agg backend, which
    does not display figures by itself)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


QUICK = os.environ.get("UPLIFT_QUICK") == "1"
OUT = Path(os.environ.get("UPLIFT_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="uplift-quickstart-"))
overrides = [
    "experiment=synthetic_demo",
    "data.synthetic.outcomes=conversion",
    "optimize.budget=20000",
]
if QUICK:
    overrides += [
        "data.synthetic.n_customers=40000",
        "sampler=fast",
        "optimize.allow_unconverged=true",
        "evaluate.crossfit_folds=0",  # the cross-fitted check refits every tactic per fold
    ]
config = uplift.compose_config(overrides)
print(config.experiment_name, config.sampler)

# %% [markdown]
# ## Run the pipeline
# `uplift.run` validates the data before any sampling, writes every artifact atomically into
# `OUT`, and returns the tables and fitted models.

# %%
result = uplift.run(config, OUT)
print(f"{result.summary['n_customers']:,} customers -> {result.summary['n_cells']} cells")
print(sorted(p.name for p in OUT.iterdir()))

# %% [markdown]
# ## Posterior uplift by segment
# Incremental conversion probability per treated customer, with 94% HDI and P(uplift > 0).

# %%
up = result.uplift
conv = up[up["metric"] == "conversion"].merge(
    result.truth[["arm", "segment", "true_uplift"]], on=["arm", "segment"]
)
conv["covered"] = conv["hdi_low"].le(conv["true_uplift"]) & conv["true_uplift"].le(conv["hdi_high"])
display(conv.pivot_table(index="segment", columns="tactic", values="mean").round(3))
print(f"94% intervals cover the true uplift in {conv['covered'].mean():.0%} of {len(conv)} cells")

# %% [markdown]
# ## Diagnostics
# Every fit reports r-hat, bulk/tail ESS and divergences; the optimizer refuses fits that fail
# the gate in `optimize.gate` unless `optimize.allow_unconverged=true`.

# %%
display(
    pd.DataFrame(result.summary["diagnostics"]).T[
        ["r_hat_max", "ess_bulk_min", "divergences", "fit_seconds"]
    ]
)

# %% [markdown]
# ## The allocation
# Customers per (segment, tactic), spend, and expected incremental profit with its interval.

# %%
alloc = result.allocation.table
display(alloc[alloc["customers"] > 0].sort_values("expected_incremental_profit", ascending=False))
lo, hi = result.summary["profit_hdi"]
print(
    f"spend {result.summary['total_spend']:,.0f}; profit {result.summary['expected_incremental_profit']:,.0f} (94% HDI {lo:,.0f}..{hi:,.0f})"
)

# %% [markdown]
# ## Re-optimise at other budgets without refitting
# The posterior draws are the optimizer's input, so a budget sweep costs only solves.
# We also score each plan against the truth (what it would really earn).

# %%
values = build_value_model(config.value).per_conversion(result.cells)
problem = AllocationProblem.from_uplift(
    {t: f.draws() for t, f in result.fits.items()},
    values,
    result.data.arm_map,
    result.allocation.table.groupby("segment")["eligible_customers"].first(),
)
true_pc = true_profit_per_customer(problem, result.truth, config.value.margin)
rows = []
for budget in [5_000, 10_000, 20_000, 40_000]:
    config.optimize.budget = budget
    plan = build_allocator(config).solve(problem)
    x = plan.table["customers"].to_numpy(dtype=float)
    rows.append(
        {
            "budget": budget,
            "spend": plan.total_spend,
            "expected_profit": plan.expected_profit,
            "true_profit": float(true_pc @ x),
        }
    )
budgets = pd.DataFrame(rows)
display(budgets.round(0))
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(budgets["budget"], budgets["expected_profit"], "o-", label="expected (posterior)")
ax.plot(budgets["budget"], budgets["true_profit"], "s--", label="true (synthetic truth)")
ax.set_xlabel("budget")
ax.set_ylabel("incremental profit")
ax.legend()
show(fig)

# %% [markdown]
# ## Figures and the report
# `uplift_forest.png` (posterior uplift by segment, truth as red crosses) and `allocation.png`
# are written next to `report.md` (and the self-contained `report.html`, when present) in the
# output folder.

# %%
for name in ("uplift_forest.png", "allocation.png"):
    if (OUT / name).exists():
        display(Image(filename=str(OUT / name)))
decision = (OUT / "report.md").read_text().split("\n## ")[1]  # report.md opens with the decision
display(Markdown("## " + "\n".join(x for x in decision.splitlines() if not x.startswith("!["))))
