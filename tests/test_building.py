"""PyTensor settings the package applies while it builds and compiles graphs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from uplift.models.building import GENERATED_SRC_SUBDIR, graph_building


def test_generated_source_goes_beside_the_compile_cache_not_to_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyTensor writes each compiled function's source to a new, never-removed file in the
    system temporary directory unless ``generated_src_dir`` is set; a model build sets it to
    ``<base_compiledir>/generated_src``, so a compile leaves nothing in /tmp."""
    fake_tmp, base = tmp_path / "tmp", Path(pytensor.config.base_compiledir)
    fake_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fake_tmp))
    with pytensor.config.change_flags(generated_src_dir=""):
        with graph_building():
            x = pt.dvector("x")
            out = pt.exp(x).sum() * 3.0 + pt.log1p(x).max()
        f = pytensor.function([x], out, mode="NUMBA")
        got = f(np.array([0.5, 1.5]))
        assert got == pytest.approx(3 * np.exp([0.5, 1.5]).sum() + np.log1p(1.5))
        assert pytensor.config.generated_src_dir == str(base / GENERATED_SRC_SUBDIR)
        assert list(fake_tmp.iterdir()) == []
        assert any((base / GENERATED_SRC_SUBDIR).glob("*.py"))


def test_a_directory_the_user_chose_is_kept(tmp_path: Path) -> None:
    mine = str(tmp_path / "mine")
    with pytensor.config.change_flags(generated_src_dir=mine):
        with graph_building():
            pass
        assert pytensor.config.generated_src_dir == mine
