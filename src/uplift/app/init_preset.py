"""``uplift init DATA``: draft an experiment preset for a customer file.

Reads the file with the run's own reader (:func:`uplift.data.io.load_customers`: CSV of any
usual delimiter and encoding, compressed, or Parquet), guesses each column's part
(:func:`uplift.data.detect.detect_columns`) and writes a preset with every choice spelled out
and commented with its evidence. What only the user can know, which tactic each arm delivers
and what it costs, is marked ``TODO``; a run refuses a preset that still holds a TODO, naming
each (:func:`uplift.config.todo_keys`). So the route from a raw file is: ``uplift init
data.csv``, one edit (the arms), ``uplift experiment=<name>`` (the command is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from uplift.atomic_io import atomic_write_text
from uplift.config import (
    EXPERIMENT_NAME,
    TODO,
    AppConfig,
    CovariateModelConfig,
    default_experiment_name,
    todo_keys,
    unknown_keys,
)
from uplift.data.contract import DataValidationError
from uplift.data.detect import MAX_SEGMENTS, MIN_CELL, Detection, detect_columns, name_words
from uplift.data.io import load_customers, sniff_kind
from uplift.tactics import Tactic

#: the arms' p-value under equal shares below which init writes the observed shares as the
#: design's (the run's sample-ratio check uses the same alpha by default, health.srm_alpha)
UNEQUAL_ALPHA = 0.001
#: files up to this many rows get the covariate model on when covariates are detected (its
#: stages read the rows into pandas: 4.5 GB peak at 1M customers against 2.0 GB without it,
#: bench/covariate_scale.py); the run's own default (enabled: null, auto) draws the same line
COVARIATE_MODEL_ROWS = CovariateModelConfig().auto_max_rows
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


class InitError(ValueError):
    """A file or an option ``uplift init`` cannot work with; the message names the fix."""


@dataclass
class Drafted:
    path: Path
    name: str
    detection: Detection
    todo: list[str]
    command: str


def q(text: object) -> str:
    """``text`` as a YAML scalar that OmegaConf reads back unchanged (quoted unless plain)."""
    t = str(text)
    if _PLAIN.fullmatch(t) and t.lower() not in _YAML_WORDS:
        return t
    if "${" in t:  # single quotes keep the backslash that stops OmegaConf interpolating
        return "'" + t.replace("'", "''").replace("${", "\\${") + "'"
    return json.dumps(t, ensure_ascii=False)


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(q(i) for i in items) + "]"


def _comment(text: str, indent: int, width: int = 96) -> list[str]:
    """``text`` as ``# `` lines at ``indent``, wrapped."""
    import textwrap

    pad = " " * indent + "# "
    return textwrap.wrap(text, width=width, initial_indent=pad, subsequent_indent=pad) or [pad]


def _unequal_split(det: Detection) -> dict[str, float] | None:
    """Observed arm shares when they are clearly not equal (else None: the default check)."""
    from scipy.stats import chisquare

    counts = [a.customers for a in det.arms]
    if len(counts) < 2 or chisquare(counts).pvalue >= UNEQUAL_ALPHA:
        return None
    total = sum(counts)
    return {a.name: round(a.customers / total, 3) for a in det.arms}


#: name words of a 0/1 outcome that reads like "the customer is still with us": retention's
RETENTION_WORDS = {"retained", "retention", "active", "renewed", "returned", "churned"}


def _outcomes_hint(det: Detection) -> list[str]:
    """When the file has other 0/1 outcome-like columns than the conversion: how to fit a
    tactic on one of them (``data.columns.outcomes``), as a comment (which arm delivers which
    tactic is the user's call). Retention is proposed for a column named like retention."""
    if not det.converted.column or not det.other_outcomes:
        return []
    col = det.other_outcomes[0]
    tactic = "retention" if name_words(col) & RETENTION_WORDS else "<tactic>"
    text = (
        f"also outcome-like (0/1): {', '.join(det.other_outcomes)}. To fit a tactic on its own "
        f"outcome instead of {det.converted.column} (the control customers' value of that "
        "column is its baseline), map it with data.columns.outcomes, e.g."
    )
    return [*_comment(text, 4), f"    # outcomes: {{{tactic}: {q(col)}}}"]


def _covariate_model(det: Detection) -> list[str]:
    """With covariates and a 0/1 outcome, the row-level covariate model on (it then chooses
    which customers of a segment get an offer: customer strata), unless the file is too large
    for its rows to be read into memory."""
    if not det.covariates or not det.converted.column:
        return []
    if det.rows > COVARIATE_MODEL_ROWS:
        text = (
            f"off: with {det.rows:,} rows (over {COVARIATE_MODEL_ROWS:,}, "
            "model.covariate_model.auto_max_rows) the covariate model would read every row "
            "into memory; try it on a sample of the customers first"
        )
        return ["model:", *_comment(text, 2), "  covariate_model: {enabled: false}"]
    text = (
        "on, because covariates were detected: a row-level model of how each customer's "
        "uplift varies with them chooses which customers of a segment get an offer (customer "
        "strata, optimize.customer_strata; README feature 6). Measured: +0.05 and +0.76 of the "
        "cell oracle's profit over the segment plan (bench/customer_targets.py, "
        "bench/strata_second.py), nothing lost where the covariates say nothing, at a longer "
        "run (cross-fitting refits it per fold). The run's default (null: auto) turns it on "
        "too with these covariates; false: one plan per segment"
    )
    return ["model:", *_comment(text, 2), "  covariate_model: {enabled: true}"]


def render(det: Detection, name: str, data: Path, source: str, options: dict[str, str]) -> str:
    """The preset's text: every detected choice with its evidence, TODO where the user decides."""
    c = det
    lines = [
        "# @package _global_",
        *_comment(
            f"Drafted by `uplift init` on {date.today().isoformat()} from {data.name} "
            f"({c.rows:,} rows, {len(c.columns)} columns). Each choice below was detected "
            "from the data and says how; check them. Replace every TODO (only you know what "
            "an arm does and costs): a run refuses the preset until none is left.",
            0,
        ),
        "defaults:",
        f"  - override /data: {source}",
        "  - override /tactics: custom",
    ]
    if c.revenue.column is None:
        lines.append("  - override /value: constant")
    lines += ["", f"experiment_name: {q(name)}", "data:", f"  path: {q(data)}"]
    lines += [f"  {k}: {q(v)}" for k, v in options.items()]
    lines.append("  columns:")
    cid = c.customer_id
    lines += _comment(("detected: " if cid.column else "") + cid.why, 4)
    lines.append(f"    customer_id: {q(cid.column) if cid.column else 'null'}")
    lines += _comment(
        f"detected: {c.arm.why}" if c.arm.column else f"TODO: the arm column. {c.arm.why}", 4
    )
    if c.arm.others:
        lines += _comment(f"other candidates: {', '.join(c.arm.others)}", 4)
    lines.append(f"    arm: {q(c.arm.column or TODO)}")
    conv = c.converted
    lines += _comment(
        f"detected: {conv.why}; the binary outcome the models fit"
        if conv.column
        else f"TODO: the 0/1 outcome column. {conv.why}",
        4,
    )
    lines.append(f"    converted: {q(conv.column or TODO)}")
    lines += _outcomes_hint(c)
    for key, choice in (("revenue", c.revenue), ("orders", c.orders)):
        lines += _comment(f"detected: {choice.why}" if choice.column else f"{choice.why}", 4)
        lines.append(f"    {key}: {q(choice.column) if choice.column else 'null'}")
    segments, derive = list(c.segments), None
    if segments:
        sizes = " x ".join(f"{s} {c.segment_candidates[s]}" for s in segments)
        lines += _comment(
            f"detected: {c.n_segments} segments ({sizes} values): the coarsest text columns "
            f"that keep at most {MAX_SEGMENTS} segments and {MIN_CELL}+ customers per segment "
            "x arm on average. Segment columns must be measured before the test (a column the "
            "treatment can change biases the uplift per segment).",
            4,
        )
    elif c.arm.column:
        one = "all_customers" if "all_customers" not in c.columns else "all_customers_"
        segments, derive = [one], one
        lines += _comment(
            "detected: no column of few values to segment by; one segment of everyone "
            f"({one}, derived below)",
            4,
        )
    else:
        segments = [TODO]
        lines += _comment("TODO: the columns to segment customers by", 4)
    rest = [f"{s} ({n})" for s, n in c.segment_candidates.items() if s not in segments]
    if rest:
        lines += _comment(f"other candidates (values): {', '.join(rest)}", 4)
    lines.append(f"    segments: {_flow(segments)}")
    if c.covariates:
        lines += _comment(
            "detected: the other columns describing a customer, for row-level models and "
            "held-out checks (model.covariate_model, evaluate)"
            + (
                f"; left out, measured after treatment: {', '.join(c.other_outcomes)}"
                if c.other_outcomes
                else ""
            )
            + (
                f"; left out, with missing values: {', '.join(c.with_missing)}"
                if c.with_missing
                else ""
            ),
            4,
        )
    lines.append(f"    covariates: {_flow(c.covariates)}")
    if derive:
        mapping = ", ".join(f"{q(a.name)}: all" for a in c.arms)
        lines.append(f"  derive:\n    {derive}: {{column: {q(c.arm.column)}, map: {{{mapping}}}}}")
    lines += ["tactics:", "  arms:" if c.arms else "  arms: {}"]
    tactics = ", ".join(t.value for t in Tactic if t is not Tactic.CONTROL)
    control = c.control
    if control:
        lines += _comment(
            f"detected: {control!r} reads like the control (no treatment). TODO: for each "
            f"other arm, the tactic it delivers ({tactics}) and its cost per treated customer "
            "(in your currency; 0 if free)",
            4,
        )
    elif c.arms:
        lines += _comment(
            "TODO: no arm reads like a control: set exactly one to {tactic: control, cost: 0}, "
            f"and for each other arm the tactic it delivers ({tactics}) and its cost per "
            "treated customer",
            4,
        )
    else:
        lines.insert(
            len(lines) - 1,
            "\n".join(
                _comment("TODO: one entry per value of the arm column: {tactic: ..., cost: ...}", 2)
            ),
        )
    width = max((len(q(a.name)) for a in c.arms), default=0)
    for a in c.arms:
        key = f"{q(a.name)}:".ljust(width + 1)
        spec = "{tactic: control, cost: 0.0}" if a.control else f"{{tactic: {TODO}, cost: {TODO}}}"
        lines.append(f"    {key} {spec}  # {a.customers:,} customers")
    lines.append("value:")
    if c.revenue.column:
        lines += _comment(
            f"check: a conversion is worth margin x the revenue ({c.revenue.column}) of "
            "converters in its segment (value=observed); revenue uplift is worth margin per unit",
            2,
        )
        lines.append("  margin: 0.4")
    else:
        lines += _comment(
            "check: no revenue column, so one extra conversion is worth per_conversion (in "
            "your currency; 1.0 counts conversions)",
            2,
        )
        lines.append("  per_conversion: 1.0")
    lines += _covariate_model(c)
    lines.append("optimize:")
    lines += _comment("check: the budget to spend, in the currency of the arms' costs", 2)
    lines.append("  budget: 20000")
    split = _unequal_split(c)
    if split:
        lines.append("health:")
        lines += _comment(
            "detected: the arms are far from equal in size, so these are their shares as "
            "observed; the run checks the arms against them (sample-ratio mismatch): put the "
            "shares the test was designed with",
            2,
        )
        lines.append(
            "  expected_split: {" + ", ".join(f"{q(k)}: {v}" for k, v in split.items()) + "}"
        )
    return "\n".join(lines) + "\n"


def _check(text: str, det: Detection) -> DictConfig:
    """The preset read back as the CLI will read it: the columns and arms as detected, and no
    key the schema lacks (a bug here, not the user's: fail loudly)."""
    node = OmegaConf.create(text)
    assert isinstance(node, DictConfig)
    cols = node.data.columns
    if det.arm.column and (
        cols.arm != det.arm.column or set(node.tactics.arms) != {a.name for a in det.arms}
    ):
        raise RuntimeError(f"uplift init wrote a preset that does not read back:\n{text}")
    keys = [str(k) for k in node if k != "defaults"]
    unknown = unknown_keys(OmegaConf.masked_copy(node, keys), AppConfig)
    if unknown:
        raise RuntimeError(f"uplift init wrote unknown key(s) {unknown}:\n{text}")
    return node


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def next_command(folder: Path, name: str, shipped: Path) -> str:
    """The command that runs the preset from here: presets outside the shipped folder are found
    through ``UPLIFT_EXPERIMENTS_DIR``."""
    env = os.environ.get("UPLIFT_EXPERIMENTS_DIR", "")
    found = [shipped.resolve(), *[Path(p).resolve() for p in env.split(os.pathsep) if p]]
    if folder.resolve() in found:
        return f"uplift experiment={name}"
    return f"UPLIFT_EXPERIMENTS_DIR={shlex.quote(_shown(folder))} uplift experiment={name}"


def draft_preset(
    data: Path,
    *,
    output: Path | None = None,
    force: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    shipped: Path,
) -> Drafted:
    """Read ``data``, detect its columns and write the preset (see the module docstring)."""
    p = Path(data).expanduser()
    if not p.is_file():
        raise InitError(f"{str(data)!r} is not a file (resolved to {p.resolve()})")
    with open(p, "rb") as f:
        source = "parquet" if sniff_kind(f.read(8)) == "parquet" else "csv"
    if output is not None:
        name = Path(output).name.removesuffix(".yaml")
        if not str(output).endswith(".yaml") or not EXPERIMENT_NAME.fullmatch(name):
            raise InitError(
                f"-o {output}: a preset is a NAME.yaml file whose NAME (the experiment=NAME "
                "option) uses letters, digits, '.', '_' or '-', e.g. -o experiments/spring.yaml"
            )
        target = Path(output)
    else:
        name = default_experiment_name(source, p)
        target = Path("experiments") / f"{name}.yaml"
    if target.exists() and not force:
        raise InitError(
            f"{target} exists; pass --force to overwrite it, or -o another path (NAME.yaml)"
        )
    if (shipped / f"{name}.yaml").exists() and target.parent.resolve() != shipped.resolve():
        raise InitError(
            f"a shipped preset is called {name!r}; name yours differently, e.g. "
            f"-o {target.parent / (name + '_own.yaml')}"
        )
    try:
        frame = load_customers(p, source, encoding=encoding, delimiter=delimiter)
    except DataValidationError as e:  # the reader names data.* keys: init's own options here
        raise InitError(
            str(e).replace("data.encoding=", "--encoding ").replace("data.delimiter", "--delimiter")
        ) from None
    det = detect_columns(frame)
    options = {k: v for k, v in (("encoding", encoding), ("delimiter", delimiter)) if v}
    text = render(det, name, p.resolve(), source, options)
    node = _check(text, det)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(text, target)
    return Drafted(target, name, det, todo_keys(node), next_command(target.parent, name, shipped))


def summary(d: Drafted) -> list[str]:
    """What init found and what to do next, for the console."""
    c = d.detection
    seg = " x ".join(c.segments) or "one segment"
    lines = [
        f"uplift init: {c.rows:,} rows, {len(c.columns)} columns",
        f"  customer id  {c.customer_id.column or 'none unique per row: the row number'}",
        f"  arm          {c.arm.column or 'TODO'}"
        + (f" ({len(c.arms)} arms, control {c.control!r})" if c.control else ""),
        f"  conversion   {c.converted.column or 'TODO'}"
        + (f" (also outcome-like: {', '.join(c.other_outcomes)})" if c.other_outcomes else ""),
        f"  revenue      {c.revenue.column or 'none'}",
        f"  segments     {seg} ({c.n_segments} segments)",
        f"  covariates   {', '.join(c.covariates) or 'none'}",
        f"uplift init: wrote {d.path}",
    ]
    if d.todo:
        lines.append(
            f"next: replace its {len(d.todo)} TODO mark(s) ({', '.join(d.todo[:4])}"
            f"{', ...' if len(d.todo) > 4 else ''}), then run:"
        )
    else:
        lines.append("next: check it, then run:")
    lines.append(f"  {d.command}")
    return lines


def main(argv: list[str], *, shipped: Path) -> int:
    """``uplift init DATA [-o PRESET.yaml] [--force] [--encoding E] [--delimiter D]``."""
    parser = argparse.ArgumentParser(
        prog="uplift init",
        description="Draft an experiment preset for a customer file (one row per customer): "
        "detected columns, commented, with TODO marks for what only you know.",
    )
    parser.add_argument("data", type=Path, help="the customer file (.csv, .csv.gz, .parquet)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write the preset (default: experiments/<file stem>.yaml here)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing preset")
    parser.add_argument("--encoding", help="the file's encoding when not UTF-8 (e.g. latin-1)")
    parser.add_argument("--delimiter", help="the CSV delimiter when sniffing it fails")
    args = parser.parse_args(argv)
    try:
        drafted = draft_preset(
            args.data,
            output=args.output,
            force=args.force,
            encoding=args.encoding,
            delimiter=args.delimiter,
            shipped=shipped,
        )
    except InitError as e:
        print(f"uplift init: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary(drafted)))
    return 0


__all__ = ["Drafted", "InitError", "draft_preset", "main", "render"]
