"""Building PyMC graphs without PyTensor's construction traces.

PyTensor records where every variable was created (``config.traceback__limit``: 8 frames read
through ``linecache``) for its error messages: ~10% of building one of our models' graphs
(measured: a fake-sampler wiring run's fits and checks 5.9 -> 5.4 s). The graphs here are built
by this package, not by the user, so the trace would point into our code. Off while we build,
unless the user set it (``PYTENSOR_FLAGS=traceback__limit=...``), then theirs holds.

Where compiled functions keep their generated source (:func:`keep_generated_src_tidy`):
PyTensor writes the Python source of every function it compiles to its own file, which it keeps
for tracebacks and Numba, in the system temporary directory and never removes, unless
``config.generated_src_dir`` is set: then the files are named by their content (the same graph
reuses its file) and PyTensor prunes those unused for a month. Measured on a build machine:
13,954 such files in /tmp after a day, about 4,000 in each hour the test suite ran, 186 from five
demo runs in one process; none since. So we point it beside PyTensor's own compile cache unless
the user chose a directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

#: sub-directory of PyTensor's ``base_compiledir`` for generated source, when the user set none
GENERATED_SRC_SUBDIR = "generated_src"


def keep_generated_src_tidy() -> None:
    """Point PyTensor's generated source at ``<base_compiledir>/generated_src`` (content-named,
    pruned by PyTensor) instead of one never-removed file per function in /tmp. A directory the
    user set (``PYTENSOR_FLAGS=generated_src_dir=...`` or ``.pytensorrc``) is kept."""
    import pytensor

    if not pytensor.config.generated_src_dir:
        pytensor.config.generated_src_dir = str(
            Path(pytensor.config.base_compiledir) / GENERATED_SRC_SUBDIR
        )


@contextlib.contextmanager
def graph_building() -> Iterator[None]:
    """Context for building a model's graph: PyTensor's construction traces off, its generated
    source kept tidy (:func:`keep_generated_src_tidy`)."""
    keep_generated_src_tidy()
    if "traceback__limit" in os.environ.get("PYTENSOR_FLAGS", ""):
        yield
        return
    import pytensor

    with pytensor.config.change_flags(traceback__limit=0):
        yield
