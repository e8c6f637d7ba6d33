"""One reader for every customer file: each way a file fails to read is a named error citing
data.path and the fix (issue #14, part 1); sniffed encodings and delimiters read correctly."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uplift.data import DataValidationError, load_customers

GOOD = pd.DataFrame(
    {
        "customer_id": [1, 2, 3, 4],
        "segment": ["NA", "EU", "NA", "EU"],  # North America, not a missing value
        "arm": ["control", "email", "control", "email"],
        "converted": [0, 1, 1, 0],
        "revenue": [0.0, 12.5, 30.0, 0.0],
    }
)


def _csv_bytes(sep: str = ",", encoding: str = "utf-8") -> bytes:
    return GOOD.to_csv(index=False, sep=sep).encode(encoding)


@pytest.mark.parametrize(
    "name, sep, encoding",
    [
        ("plain.csv", ",", "utf-8"),
        ("semicolon.csv", ";", "utf-8"),
        ("tabs.tsv", "\t", "utf-8"),
        ("bom.csv", ",", "utf-8-sig"),
        ("utf16.csv", ",", "utf-16"),
    ],
)
def test_encodings_and_delimiters_are_sniffed(tmp_path, name, sep, encoding):
    p = tmp_path / name
    p.write_bytes(_csv_bytes(sep, encoding))
    frame = load_customers(p, "csv")
    assert list(frame.columns) == list(GOOD.columns)
    assert frame["segment"].tolist() == GOOD["segment"].tolist()  # "NA" kept
    assert np.allclose(frame["revenue"], GOOD["revenue"])


def test_compressed_csv_and_parquet_read(tmp_path):
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(_csv_bytes(";")))
    assert load_customers(gz, "csv")["segment"].tolist() == GOOD["segment"].tolist()
    pq = tmp_path / "c.parquet"
    GOOD.to_parquet(pq)
    assert load_customers(pq, "parquet").shape == GOOD.shape


def test_na_values_are_configurable(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(_csv_bytes())
    frame = load_customers(p, "csv", na_values=["", "NA"])
    assert frame["segment"].isna().sum() == 2


def _hostile(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (path, data.source, what the message must say)."""
    d = tmp_path
    out: dict[str, tuple[Path, str, str]] = {}

    def put(name: str, data: bytes, source: str, says: str) -> None:
        p = d / name
        p.write_bytes(data)
        out[name] = (p, source, says)

    put("empty.csv", b"", "csv", "is empty (0 bytes)")
    put("header_only.csv", b"customer_id,segment,arm\n", "csv", "but no rows")
    put("blank_lines.csv", b"\n\n\n", "csv", "no columns")
    put("extra_field.csv", b"a,b,c\n1,2,3\n4,5,6,7\n", "csv", "not a well-formed CSV")
    full = gzip.compress(_csv_bytes() * 200)
    put("truncated.csv.gz", full[: len(full) // 2], "csv", "truncated or corrupt")
    rng = np.random.default_rng(0)
    put("random.bin", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "csv", "data.encoding")
    put("latin1.csv", "seg,arm\ncaf\xe9,a\n".encode("latin-1"), "csv", "data.encoding=latin-1")
    buf = io.BytesIO()
    GOOD.to_parquet(buf)
    put("is_parquet.csv", buf.getvalue(), "csv", "use data=parquet")
    put("is_csv.parquet", _csv_bytes(), "parquet", "for a CSV use data=csv")
    put("bad.parquet", b"PAR1" + b"\x00" * 64, "parquet", "could not be read as Parquet")
    (d / "a_dir").mkdir()
    out["a_dir"] = (d / "a_dir", "csv", "is a directory")
    out["missing.csv"] = (d / "missing.csv", "csv", "does not exist")
    return out


def test_every_unreadable_file_is_a_named_error(tmp_path):
    cases = _hostile(tmp_path)
    assert len(cases) >= 12
    for name, (path, source, says) in cases.items():
        with pytest.raises(DataValidationError) as err:
            load_customers(path, source)
        msg = str(err.value)
        assert says in msg, (name, msg)
        assert "data.path" in msg, (name, msg)
    for unset in (None, "", "???"):
        with pytest.raises(DataValidationError, match="data.path is not set"):
            load_customers(unset, "csv")


def test_config_names_a_bad_encoding_or_delimiter():
    from uplift import compose_config

    with pytest.raises(ValueError, match="data.encoding='klingon'"):
        compose_config(["data=csv", "data.path=x.csv", "data.encoding=klingon"])
    with pytest.raises(ValueError, match="data.delimiter=';;' must be one character"):
        compose_config(["data=csv", "data.path=x.csv", "data.delimiter=';;'"])


@pytest.mark.parametrize("case", ["truncated.csv.gz", "a_dir"])
def test_cli_exit_2_without_traceback_or_artifacts(tmp_path, case, uplift_cli, monkeypatch):
    """The console entry point in this process (a fresh process: tests/test_cli.py)."""
    src = tmp_path / "in"
    src.mkdir()
    path, source, says = _hostile(src)[case]
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    r = uplift_cli(
        f"data={source}",
        f"data.path={path}",
        "data.columns.segments=[segment]",
        f"hydra.run.dir={out}",
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert says in r.stderr and "data.path" in r.stderr
    assert "Traceback" not in r.stderr
    # only the summary saying why the run failed
    written = [p.name for p in out.rglob("*") if p.is_file() and ".hydra" not in p.parts]
    assert sorted(w for w in written if w != "cli.log") == ["summary.json"], written
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and says in summary["message"]
