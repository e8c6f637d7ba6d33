"""Benchmark: the data stage at scale, DuckDB vs Spark-local vs pandas, and the end-to-end run.

Generated customer rows (the synthetic generator's 6 tactics + control on 48 segments, 4 value
tiers x 12 needs) are written once per size as Parquet under ``--dir``; each measurement runs in
its own process, so its peak RSS (``wait4``'s ``ru_maxrss``) is that engine's alone. The files are
written in processes of their own too: a child started by ``subprocess`` (vfork + exec on Linux)
reports at least its parent's peak RSS as its own ``ru_maxrss``, so a parent that had written the
1e8 file in-process (DuckDB's ``COPY``, 7.7 GB) made the 1e8 DuckDB stage look like 7.86 GB when
the stage itself peaks at 1.3 GB. The parent's own peak is printed at the end: no figure in the
table can be below it.

* ``data stage``: read + contract checks + rows -> cells (+ the plausibility guards), per engine
  (``pandas``: today's reader, ``validate_customers`` and ``aggregate_cells``; ``duckdb`` and
  ``spark``: :mod:`uplift.data.engine`), with rows/s;
* ``end to end``: ``uplift data=parquet`` at default settings on the largest size (the CLI, every
  stage, report included).

    python bench/scale.py [--sizes 1e5 1e6 1e7] [--with-1e8] [--engines duckdb spark pandas]
                          [--end-to-end 1e7] [--dir /tmp/uplift-scale]

The machine is shared: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TIERS = ["low", "mid", "high", "top"]
NEEDS = ["price", "quality", "convenience", "variety", *[f"need{i}" for i in range(5, 13)]]
CHUNK = 1_000_000


def replicate(src: Path, copies: int, path: Path) -> None:
    """``copies`` copies of ``src``'s rows with new ids, written by DuckDB (1e8 rows from the
    1e7 file in seconds, where the generator would take an hour)."""
    import duckdb

    (top,) = duckdb.sql(f"SELECT max(customer_id) FROM read_parquet('{src}')").fetchall()[0]
    step = int(top)
    tmp = path.with_suffix(".tmp")
    duckdb.sql(
        f"COPY (SELECT * REPLACE (customer_id + k * {step + 1} AS customer_id) "
        f"FROM read_parquet('{src}'), range({copies}) AS r(k)) TO '{tmp}' (FORMAT parquet)"
    )
    tmp.rename(path)


def write_rows(n: int, path: Path) -> None:
    """``n`` synthetic customers as Parquet, written in chunks (ids unique across chunks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uplift.data.synthetic import default_arm_map, generate

    arms = default_arm_map()
    tmp = path.with_suffix(".tmp")
    writer = None
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        rows = generate(
            arms,
            n_customers=k,
            seed=1 + done // CHUNK,
            value_tiers=TIERS,
            tier_shares=[0.4, 0.3, 0.2, 0.1],
            needs=NEEDS,
        ).customers
        rows["customer_id"] = rows["customer_id"].astype("int64") + done
        table = pa.Table.from_pandas(rows, preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
        done += k
    assert writer is not None
    writer.close()
    tmp.rename(path)


def stage(engine: str, path: str) -> dict:
    """The data stage in this process; seconds per step."""
    from uplift.data import ColumnMap, aggregate_cells, load_customers, validate_customers
    from uplift.data.checks import check_plausible, check_plausible_engine
    from uplift.data.engine import open_rows, validated_rows
    from uplift.data.settings import DataChecks
    from uplift.data.synthetic import default_arm_map

    arms, cols = default_arm_map(), ColumnMap(segments=("value_tier", "needs"))
    kw = {"chains": 4, "draws": 1000, "tune": 1000}
    t0 = time.perf_counter()
    out: dict = {}
    if engine == "pandas":
        raw = load_customers(path, "parquet")
        out["read"] = time.perf_counter() - t0
        data = validate_customers(raw, cols, arms)
        out["validate"] = time.perf_counter() - t0 - out["read"]
        t1 = time.perf_counter()
        check_plausible(data.frame, DataChecks(), revenue_column="revenue", **kw)
        cells = aggregate_cells(data)
        out["cells+checks"] = time.perf_counter() - t1
    else:
        t = open_rows(engine, path=path, source="parquet", spark_master="local[2]")
        out["open"] = time.perf_counter() - t0
        rows, cells, n = validated_rows(t, cols, arms, engine)
        out["validate+cells"] = time.perf_counter() - t0 - out["open"]
        t1 = time.perf_counter()
        check_plausible_engine(
            rows, cells, n, DataChecks(), revenue_column="revenue", reference=lambda: None, **kw
        )
        out["checks"] = time.perf_counter() - t1
    out["total"] = time.perf_counter() - t0
    out["cells"] = len(cells)
    out["customers"] = int(cells["n"].sum())
    return out


def write_file(n: int, path: Path, base: Path) -> None:
    """The ``n``-row file at ``path``; 1e8 rows as 10 copies of the 1e7 file ``base``."""
    if n == 100_000_000:
        if not base.exists():
            write_rows(10_000_000, base)
        replicate(base, 10, path)
    else:
        write_rows(n, path)


def ensure_file(n: int, d: Path) -> Path:
    """``d/rows_<n>.parquet``, written (in a process of its own) when it is missing."""
    path = d / f"rows_{n}.parquet"
    if not path.exists():
        base = d / "rows_10000000.parquet"
        cmd = [sys.executable, __file__, "--write", str(n), str(path), str(base)]
        wall, gb, _, code = run_isolated(cmd)
        if code != 0:
            raise SystemExit(f"writing {path} failed (exit {code})")
        print(f"  (wrote {path}: {wall:.0f} s, {gb:.2f} GB peak RSS)")
    return path


def self_peak_gb() -> float:
    """This process's peak RSS (GB): a floor under every child's ``ru_maxrss``."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def run_isolated(cmd: list[str]) -> tuple[float, float, str, int]:
    """(wall s, peak RSS GB, stdout, exit code) of ``cmd``; RSS from this child alone."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    assert p.stdout is not None and p.stderr is not None
    out, err = p.stdout.read(), p.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(err[-3000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1e6, out, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    ap.add_argument("--with-1e8", action="store_true", help="add 1e8 rows (~2.5 GB of Parquet)")
    ap.add_argument("--engines", nargs="+", default=["duckdb", "spark", "pandas"])
    ap.add_argument("--end-to-end", type=float, default=1e7, help="0: skip the CLI run")
    ap.add_argument("--dir", default="/tmp/uplift-scale")
    ap.add_argument("--stage", nargs=2, metavar=("ENGINE", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--write", nargs=3, metavar=("N", "FILE", "BASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(*args.stage)))
        return
    if args.write:
        write_file(int(args.write[0]), Path(args.write[1]), Path(args.write[2]))
        return
    sizes = [int(s) for s in args.sizes] + ([100_000_000] if args.with_1e8 else [])
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'rows':>11} {'engine':>7} {'wall s':>7} {'peak GB':>8} {'rows/s':>11}  steps (s)")
    for n in sizes:
        path = ensure_file(n, d)
        for engine in args.engines:
            if n > 10_000_000 and engine != "duckdb":  # pandas would need ~60 GB at 1e8
                print(f"{n:>11,} {engine:>7} skipped (out of memory range of this machine)")
                continue
            cmd = [sys.executable, __file__, "--stage", engine, str(path)]
            wall, gb, out, code = run_isolated(cmd)
            if code != 0:
                print(f"{n:>11,} {engine:>7} failed (exit {code})")
                continue
            steps = json.loads(out.strip().splitlines()[-1])
            detail = ", ".join(f"{k} {v:.1f}" for k, v in steps.items() if isinstance(v, float))
            print(
                f"{n:>11,} {engine:>7} {wall:>7.1f} {gb:>8.2f} {n / steps['total']:>11,.0f}  "
                f"{detail} (load {os.getloadavg()[0]:.1f})"
            )
    if args.end_to_end:
        n = int(args.end_to_end)
        path = ensure_file(n, d)
        out_dir = d / f"run_{n}"
        cmd = [
            sys.executable,
            "-m",
            "uplift.cli",
            "data=parquet",
            f"data.path={path}",
            "data.columns.segments=[value_tier,needs]",
            f"hydra.run.dir={out_dir}",
            # the generator's design (a quarter in control), so the SRM check knows the split
            "+health.expected_split={control:0.25,cross_sell_email:0.125,upgrade_offer:0.125,"
            "loyalty_points:0.125,discount_10pct:0.125,retention_call:0.125,referral_bonus:0.125}",
            "report.existing=overwrite",
        ]
        wall, gb, _, code = run_isolated(cmd)
        print(
            f"end to end, {n:,} customers (uplift data=parquet, default settings): "
            f"{wall:.1f} s wall, {gb:.2f} GB peak RSS, exit {code} "
            f"(load {os.getloadavg()[0]:.1f})"
        )
    print(f"this process's own peak RSS: {self_peak_gb():.2f} GB (a floor under the figures)")


if __name__ == "__main__":
    main()
