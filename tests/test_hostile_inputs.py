"""Fuzz suite (issue #14): malformed and hostile inputs, each refused before sampling with an
error that names the key, column or file and the fix, exit 2, no traceback; a failed run leaves
only its summary saying why.

Every hand-written case (data 32, configuration 25, files 9: 66) goes through the console entry point
``uplift.cli.main`` in the test process (26 representative cases in the default tier, the other
40 in the slow tier), with sampling replaced by a trap that says so, and its
exit code, stderr and run folder are checked. Generated damage to a good file (hypothesis) runs
in-process: each value either is valid (the run reaches sampling) or is a named run error.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uplift
from fast_tier import REACHED, run_cli
from uplift.data import DataValidationError
from uplift.experiment.health import HealthCheckError
from uplift.optimize import AllocationError
from uplift.pipeline import ConvergenceGateError

RUN_ERRORS = (DataValidationError, AllocationError, HealthCheckError, ConvergenceGateError)
ARMS = [
    "tactics=custom",
    "+tactics.arms.control={tactic: control}",
    "+tactics.arms.email={tactic: cross_sell, cost: 0.5}",
    "+tactics.arms.call={tactic: retention, cost: 2.0}",
]
BASE = [
    "data=csv",
    "data.columns.segments=[tier,region]",
    *ARMS,
    "sampler=fast",
    "evaluate.crossfit_folds=0",
    "optimize.budget=500",
]


def base_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "tier": rng.choice(["high", "low"], n),
            "region": rng.choice(["north", "south"], n),
            "arm": rng.choice(["control", "email", "call"], n),
            "converted": (rng.random(n) < 0.12).astype(int),
            "orders": rng.poisson(1.0, n),
        }
    )
    df["revenue"] = np.where(df["converted"] == 1, rng.lognormal(3.0, 0.6, n).round(2), 0.0)
    return df


class Sampled(AssertionError):
    pass


def csv_case(tmp_path: Path, frame: pd.DataFrame, name: str = "c.csv") -> str:
    p = tmp_path / name
    frame.to_csv(p, index=False)
    return f"data.path={p}"


# ---- data content: (what to do to the frame, extra overrides, what the message must say) ----
Edit = Callable[[pd.DataFrame], pd.DataFrame]


def _set(col: str, value, rows=slice(None)) -> Edit:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if col in df.columns:
            df[col] = df[col].astype(object)
        df.loc[df.index[rows], col] = value
        return df

    return f


def _drop(col: str) -> Edit:
    return lambda df: df.drop(columns=[col])


def _seg_collision(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[df.index[:1500], "tier"] = "a/b"
    df.loc[df.index[:1500], "region"] = "c"
    df.loc[df.index[1500:], "tier"] = "a"
    df.loc[df.index[1500:], "region"] = "b/c"
    return df


def _many_segments(df: pd.DataFrame) -> pd.DataFrame:
    n = 90_000
    rng = np.random.default_rng(1)
    seg = np.arange(n) % 10_000
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tier": (seg // 100).astype(str),
            "region": (seg % 100).astype(str),
            "arm": np.where(
                np.arange(n) % 9 < 3, "control", np.where(np.arange(n) % 9 < 6, "email", "call")
            ),
            "converted": (rng.random(n) < 0.1).astype(int),
            "revenue": 0.0,
            "orders": 0,
        }
    )


def _no_control_in(seg: tuple[str, str]) -> Edit:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        m = (df["tier"] == seg[0]) & (df["region"] == seg[1]) & (df["arm"] == "control")
        return df[~m]

    return f


def _only_arms(*arms: str) -> Edit:
    return lambda df: df[df["arm"].isin(arms)]


DATA_CASES: dict[str, tuple[Edit, list[str], str]] = {
    "no_arm_column": (_drop("arm"), [], "arm"),
    "no_converted_column": (_drop("converted"), [], "converted"),
    "no_segment_column": (_drop("region"), [], "region"),
    "converted_is_2": (_set("converted", 2, slice(0, 3)), [], "must be 0/1"),
    "converted_is_text": (_set("converted", "yes", slice(0, 3)), [], "converted"),
    "converted_missing": (_set("converted", np.nan, slice(0, 3)), [], "converted"),
    "negative_revenue": (_set("revenue", -5.0, slice(0, 2)), [], "negative"),
    "infinite_revenue": (_set("revenue", np.inf, slice(0, 1)), [], "infinite"),
    "text_revenue": (_set("revenue", "lots", slice(0, 1)), [], "revenue"),
    "huge_revenue": (
        lambda df: _set("revenue", 1e15, slice(0, 1))(_set("converted", 1, slice(0, 1))(df)),
        [],
        "data.checks.revenue_outlier_z",
    ),
    "revenue_without_conversion": (
        lambda df: df.assign(revenue=df["revenue"] + 5.0),
        [],
        "allow_revenue_without_conversion",
    ),
    "duplicate_ids": (_set("customer_id", 7, slice(0, 2)), [], "duplicated"),
    "missing_ids": (_set("customer_id", np.nan, slice(0, 2)), [], "customer_id"),
    "unknown_arm_label": (_set("arm", "sms", slice(0, 5)), [], "sms"),
    "configured_arm_absent": (_only_arms("control", "email"), [], "call"),
    "segment_without_control": (_no_control_in(("high", "north")), [], "control"),
    "all_zero_outcome": (
        lambda df: df.assign(converted=0, revenue=0.0, orders=0),
        [],
        "no outcome to model",
    ),
    "segment_names_collide": (_seg_collision, [], "more than one combination"),
    "ten_thousand_segments": (_many_segments, [], "data.checks.max_segments"),
    "segments_cut_too_fine": (
        lambda df: df.assign(
            tier=(df["customer_id"] // 9).astype(str),
            region="north",
            arm=np.array(["control", "email", "call"])[df["customer_id"] % 3],
        ),
        [],
        "min_median_cell_customers",
    ),
    "segment_missing_values": (_set("tier", np.nan, slice(0, 10)), [], "tier"),
    "negative_orders": (
        _set("orders", -1, slice(0, 2)),
        ["data.columns.orders=orders"],
        "orders",
    ),
    "fractional_orders": (
        _set("orders", 1.5, slice(0, 2)),
        ["data.columns.orders=orders"],
        "orders",
    ),
    "hurdle_without_revenue": (
        _drop("revenue"),
        ["data.columns.revenue=null", "model.family=hurdle_lognormal"],
        "revenue",
    ),
    "counts_without_orders": (_set("orders", 0), ["model.family=negative_binomial"], "orders"),
    "covariate_not_in_data": (
        lambda df: df,
        ["model.covariate_model.enabled=true", "data.columns.covariates=[age]"],
        "age",
    ),
    "rule_unknown_tactic": (
        lambda df: df,
        ["+optimize.constraints=[{type: tactic_capacity, tactic: referral, slots: 5, name: r}]"],
        "referral",
    ),
    "rule_unknown_segment": (
        lambda df: df,
        ["+optimize.constraints=[{type: exclude_segments, segments: [mars]}]"],
        "mars",
    ),
    "rule_unknown_type": (
        lambda df: df,
        ["+optimize.constraints=[{type: teleport, name: t}]"],
        "teleport",
    ),
    "rules_conflict": (
        lambda df: df,
        [
            "+optimize.constraints=[{type: tactic_spend, tactic: retention, min_spend: 5000,"
            " name: committed}]"
        ],
        "committed",
    ),
    "split_unknown_arm": (
        lambda df: df,
        ["+health.expected_split.bogus=0.5"],
        "health.expected_split",
    ),
    "sample_ratio_mismatch": (
        lambda df: pd.concat(
            [df, df[df["arm"] == "email"].assign(customer_id=lambda d: d["customer_id"] + 10**6)]
        ),
        [],
        "sample-ratio mismatch",
    ),
}


# ---- configuration: each a named key -------------------------------------------------------
CONFIG_CASES: dict[str, tuple[list[str], str]] = {
    "typo_key": (["+optimize.budgett=500"], "optimize.budgett"),
    "unknown_group_key": (["+data.colums.segments=[tier]"], "data.colums"),
    "cost_is_text": (["tactics.arms.email.cost=cheap"], "tactics.arms.email.cost='cheap'"),
    "env_interpolation": (["experiment_name=${oc.env:HOME}"], "oc.env"),
    "negative_cost": (["tactics.arms.email.cost=-1"], "cost"),
    "unknown_tactic": (["+tactics.arms.sms={tactic: telepathy, cost: 1}"], "telepathy"),
    "two_controls": (["+tactics.arms.holdout={tactic: control}"], "control"),
    "negative_budget": (["optimize.budget=-5"], "optimize.budget"),
    "bad_objective": (["optimize.objective=greedy"], "objective"),
    "alpha_out_of_range": (["optimize.alpha=2"], "optimize.alpha"),
    "unknown_family": (["model.family=poisson_magic"], "poisson_magic"),
    "family_for_unknown_tactic": (["+model.families.teleport=binomial"], "teleport"),
    "zero_draws": (["sampler.draws=0"], "sampler.draws"),
    "zero_chains": (["sampler.chains=0"], "sampler.chains"),
    "bad_backend": (["sampler.backend=abacus"], "abacus"),
    "hdi_prob_above_1": (["report.hdi_prob=1.5"], "hdi_prob"),
    "bad_value_kind": (["value.kind=vibes"], "vibes"),
    "escaping_name": (["experiment_name=../../etc"], "experiment_name"),
    "bad_encoding": (["data.encoding=klingon"], "data.encoding"),
    "long_delimiter": (["data.delimiter=';;'"], "data.delimiter"),
    "max_segments_zero": (["data.checks.max_segments=0"], "max_segments"),
    "holdout_fraction_1": (["evaluate.holdout_fraction=1"], "holdout_fraction"),
    "unset_path": (["data.path=null"], "data.path"),
    "price_test_one_price": (
        [
            "+model.families.retention=price_logit",
            "+pricing.prices={control: 10.0, call: 10.0}",
        ],
        "single price",
    ),
    "negative_price": (
        [
            "+model.families.retention=price_logit",
            "+pricing.prices={control: 10.0, call: -2.0}",
        ],
        "positive and finite",
    ),
}


# ---- files: the reader's cases, through the run --------------------------------------------
def _file_cases(d: Path) -> dict[str, tuple[Path, str, str]]:
    good = base_frame().to_csv(index=False).encode()
    gz = gzip.compress(good * 3)
    rng = np.random.default_rng(2)
    cases = {
        "empty": (b"", "csv", "is empty"),
        "header_only": (b"customer_id,tier,region,arm,converted\n", "csv", "no rows"),
        "extra_field": (good + b"1,high,north,control,0,1,2,3,4\n", "csv", "well-formed"),
        "truncated_gz": (gz[: len(gz) // 2], "csv", "truncated or corrupt"),
        "random_bytes": (
            rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(),
            "csv",
            "data.encoding",
        ),
        "utf16_without_bom": (good.decode().encode("utf-16-le"), "csv", "data."),
        "csv_as_parquet": (good, "parquet", "data=csv"),
    }
    out = {}
    for name, (data, source, says) in cases.items():
        suffix = (
            ".csv.gz" if name == "truncated_gz" else (".parquet" if source == "parquet" else ".csv")
        )
        p = d / f"{name}{suffix}"
        p.write_bytes(data)
        out[name] = (p, source, says)
    (d / "folder").mkdir()
    out["directory"] = (d / "folder", "csv", "directory")
    out["missing"] = (d / "nope.csv", "csv", "does not exist")
    return out


# ---- every case through the console script -------------------------------------------------
def all_cases(d: Path) -> list[dict]:
    """Every hand-written case: name, CLI arguments, what stderr must say, its run folder."""
    cases = []
    good = csv_case(d, base_frame(), "good.csv")
    for name, (edit, extra, says) in sorted(DATA_CASES.items()):
        cases.append((name, [*BASE, csv_case(d, edit(base_frame()), f"{name}.csv"), *extra], says))
    for name, (extra, says) in sorted(CONFIG_CASES.items()):
        cases.append((name, [*BASE, good, *extra], says))
    src = d / "files"
    src.mkdir()
    for name, (path, source, says) in sorted(_file_cases(src).items()):
        args = [f"data={source}", *[o for o in BASE if o != "data=csv"], f"data.path={path}"]
        cases.append((f"file_{name}", args, says))
    return [
        {"name": n, "args": [*a, f"hydra.run.dir={d / 'runs' / n}"], "says": says}
        for n, a, says in cases
    ]


#: the default tier's cases: one or more per stage that refuses input (Hydra's composition, the
#: schema's checks, the file reader, column and value checks, health, allocation rules, family
#: and column checks); each case costs a full in-process CLI start (~0.6 s of Hydra composing),
#: so the other cases, which take the same path to a different message, run in the slow tier
DEFAULT_TIER = {
    "typo_key",
    "cost_is_text",
    "env_interpolation",
    "unknown_family",
    "zero_draws",
    "escaping_name",
    "price_test_one_price",
    "no_arm_column",
    "converted_is_2",
    "text_revenue",
    "huge_revenue",
    "duplicate_ids",
    "unknown_arm_label",
    "segment_without_control",
    "segment_names_collide",
    "all_zero_outcome",
    "hurdle_without_revenue",
    "covariate_not_in_data",
    "rules_conflict",
    "rule_unknown_segment",
    "sample_ratio_mismatch",
    "file_empty",
    "file_truncated_gz",
    "file_random_bytes",
    "file_csv_as_parquet",
    "file_missing",
}


@pytest.mark.parametrize("tier", ["default", pytest.param("rest", marks=pytest.mark.slow)])
def test_every_hostile_input_exits_2_named_before_sampling_leaving_only_why(
    tmp_path, monkeypatch, no_sampling, tier
):
    """Each case through ``uplift.cli.main`` in this process (argv, Hydra, exit codes and
    stderr as in a shell), with sampling trapped (tests/fast_tier.py): the
    :data:`DEFAULT_TIER` cases by default, every other case in the slow tier."""
    cases = all_cases(tmp_path)
    assert len(cases) >= 60
    assert {c["name"] for c in cases} >= DEFAULT_TIER  # a renamed case is not silently dropped
    cases = [c for c in cases if (c["name"] in DEFAULT_TIER) == (tier == "default")]
    results = {c["name"]: run_cli(monkeypatch, *c["args"]) for c in cases}
    bad = []
    for case in cases:
        got = results[case["name"]]
        err = got.stderr
        folder = tmp_path / "runs" / case["name"]
        # a failed run leaves its summary saying why (configuration errors stop before the run)
        left = sorted(
            p.name
            for p in folder.rglob("*")
            if p.is_file() and ".hydra" not in p.parts and p.name != "cli.log"
        )
        why = [
            got.returncode != 2 and f"exit {got.returncode}",
            "Traceback" in err and "traceback",
            REACHED in err and "sampled",
            case["says"] not in err and f"message lacks {case['says']!r}",
            left not in ([], ["summary.json"]) and f"left {left}",
            [p.name for p in tmp_path.joinpath("runs").glob(".*staging*")] and "staging left",
        ]
        if left == ["summary.json"]:
            summary = json.loads((folder / "summary.json").read_text())
            why.append(summary.get("status") != "failed" and f"status {summary.get('status')}")
        why = [w for w in why if w]
        if why:
            bad.append(f"{case['name']}: {', '.join(why)} | {err.strip()[-300:]}")
    assert not bad, "\n".join(bad)


# ---- generated: random damage to a good file ------------------------------------------------
@pytest.mark.slow  # 25 in-process runs of the console script (~20 s); the cases above are default
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    column=st.sampled_from(["arm", "converted", "revenue", "tier", "customer_id"]),
    junk=st.one_of(
        st.sampled_from(["", "NaN", "-1", "1e400", "=cmd|' /C calc'!A0", "2", "\x00", "🙂"]),
        st.text(min_size=1, max_size=6),
    ),
    rows=st.integers(1, 5),
)
def test_random_cell_damage_is_named_or_harmless(tmp_path_factory, column, junk, rows):
    """A random value written into a few cells of a good file: either the run proceeds to
    sampling (the value was valid, e.g. a new tier name) or stops with a named error naming the
    column; never another exception."""
    import uplift.pipeline as pipeline

    d = tmp_path_factory.mktemp("fuzz")
    df = base_frame().astype({column: object})
    df.loc[df.index[:rows], column] = junk
    p = d / "c.csv"
    df.to_csv(p, index=False)
    overrides = [*BASE, f"data.path={p}"]
    config = uplift.compose_config(overrides)
    original = pipeline.fit_tactics
    try:
        pipeline.fit_tactics = lambda *a, **k: (_ for _ in ()).throw(Sampled())
        uplift.run(config, d / "out")
    except Sampled:
        pass  # valid after all: it reached sampling
    except RUN_ERRORS as e:
        assert column in str(e) or "segment" in str(e) or "arm" in str(e), str(e)
    finally:
        pipeline.fit_tactics = original
