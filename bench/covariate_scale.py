"""Benchmark: what the covariate model's default costs as the customer base grows (issue #10, 4).

``model.covariate_model.enabled`` defaults to auto: declared covariates and a 0/1 outcome turn
the row-level covariate model on (customer strata, its fold refits in cross-fitting) up to
``auto_max_rows`` (1,000,000) customers. This measures that default against the same run with
the model off, on ``crossed_decisions.py``'s scenario (36 crossed segments, control + 5 tactics,
``tenure`` and ``recent_visits`` declared as covariates) at each size: each run is the CLI in a
process of its own (wall seconds, peak RSS from ``wait4``), with the fit cache off so both runs
fit the same segment models, and the seconds per stage from its ``summary.json``. The Parquet
files are written in processes of their own (see ``scale.py`` on why).

    python bench/covariate_scale.py [--sizes 2e5 1e6] [--dir /tmp/uplift-covscale]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import crossed_decisions as cd  # noqa: E402
from scale import run_isolated, self_peak_gb  # noqa: E402

COVARIATES = ("tenure", "recent_visits")


def write_rows(n: int, path: Path) -> None:
    customers, _, _ = cd.generate_crossed_customers(1, n)
    customers.to_parquet(path, index=False)


def ensure_file(n: int, d: Path) -> Path:
    path = d / f"crossed_{n}.parquet"
    if not path.exists():
        wall, gb, _, code = run_isolated([sys.executable, __file__, "--write", str(n), str(path)])
        if code != 0:
            raise SystemExit(f"writing {path} failed (exit {code})")
        print(f"  (wrote {path}: {wall:.0f} s, {gb:.2f} GB peak RSS)")
    return path


def run(path: Path, n: int, out: Path, extra: list[str]) -> dict:
    overrides = [
        o if not o.startswith("data=") else "data=parquet"
        for o in cd.user_overrides(path, cd.default_budget(n))
    ]
    cmd = [
        sys.executable,
        "-m",
        "uplift.cli",
        *overrides,
        f"data.columns.covariates=[{','.join(COVARIATES)}]",
        "sampler.cache=false",
        f"hydra.run.dir={out}",
        "report.existing=overwrite",
        *extra,
    ]
    wall, gb, _, code = run_isolated(cmd)
    row: dict = {"wall": wall, "gb": gb, "exit": code}
    summary = out / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        row["stages"] = s.get("seconds", {})
        row["setting"] = s.get("covariate_model_setting", {})
        row["strata"] = (s.get("customer_strata") or {}).get("strata")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[2e5, 1e6])
    ap.add_argument("--dir", default="/tmp/uplift-covscale")
    ap.add_argument("--write", nargs=2, metavar=("N", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        write_rows(int(args.write[0]), Path(args.write[1]))
        return
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for n in (int(s) for s in args.sizes):
        path = ensure_file(n, d)
        rows = {
            "default": run(path, n, d / f"run_{n}_default", []),
            "off": run(path, n, d / f"run_{n}_off", ["model.covariate_model.enabled=false"]),
        }
        for name, r in rows.items():
            stages = ", ".join(f"{k} {v:.1f}" for k, v in (r.get("stages") or {}).items())
            setting = r.get("setting") or {}
            print(
                f"{n:>10,} {name:>8}: {r['wall']:6.1f} s wall, {r['gb']:.2f} GB peak RSS, "
                f"exit {r['exit']}, covariate model {setting.get('enabled')} "
                f"({setting.get('by')}), strata {r.get('strata')}; {stages} "
                f"(load {os.getloadavg()[0]:.1f})"
            )
        ratio = rows["default"]["wall"] / rows["off"]["wall"]
        print(f"{n:>10,} default / off: {ratio:.2f}x wall")
    print(f"this process's own peak RSS: {self_peak_gb():.2f} GB (a floor under the figures)")


if __name__ == "__main__":
    main()
