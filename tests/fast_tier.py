"""Test-only seams of the fast tier: a fake posterior sampler for wiring tests, a trap for
checks that must stop before sampling, and the console script run in-process.

Wiring tests ask whether a run writes the right files, columns and messages, not whether NUTS
recovers a posterior, so they need draws of the right shape, with the right names, dims and
coords, near the data, at a fraction of a NUTS fit's cost (compiling the graph for nutpie takes
seconds per model structure). :func:`fake_sample` stands in for every backend of
:mod:`uplift.models.sampling` (same signature as ``sample_nutpie``):

* the point: a bounded BFGS climb of the model's log density (Jacobian included) on the
  unconstrained space from the model's initial point, so draws sit near the posterior mode;
* the draws: ``mode + FAKE_SD * s[t] * c``, one random direction ``c`` scaled by a designed scalar
  sequence ``s`` (normal quantiles of a golden-ratio Weyl sequence, per chain). Every quantity is
  then a smooth, locally monotone function of ``s``, so its rank-normalised r-hat and ESS are
  those of ``s``: r-hat ~1 and bulk and tail ESS >= chains x draws, whatever the number of
  parameters. The convergence gate passes (independent draws would not: with ~100 quantities
  the worst r-hat of 600 iid draws is ~1.015 and the worst tail ESS ~300).

The draws are not a posterior: the mode pools segments more than the posterior does, so a
posterior predictive check may flag some cells (tests whose data do so set
``optimize.allow_unconverged=true``), and nothing statistical may be asserted from them.

The compiled log density and output functions are cached per model structure, like
``sample_nutpie``'s compiled graph, and fed each fit's ``pm.Data`` values. Seeded: the same
model, settings and seed give the same draws.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.util import get_default_varnames
from pytensor.compile.mode import Mode
from pytensor.graph.replace import vectorize_graph
from scipy.optimize import minimize
from scipy.stats import norm

from uplift.models.sampling import _posterior_tree, _structure_key, feed_data
from uplift.models.settings import SamplerSettings

#: spread of the draws along their direction, on the unconstrained space
FAKE_SD = 0.05
#: BFGS iterations towards the mode (bounded: hierarchical modes sit at zero group scales)
MODE_STEPS = 60
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass
class _Compiled:
    model: pm.Model
    names: list[str]
    shapes: list[tuple[int, ...]]
    start: np.ndarray
    logp_grad: Callable
    outputs: Callable
    out_names: list[str]


_CACHE: dict[tuple, _Compiled] = {}


#: the log density's mode: C thunks (PyTensor's C code is cached on disk across processes)
#: after the ``fast_compile`` rewrites only. PyTensor 3's FAST_RUN links with numba: 0.7-1.6 s
#: a structure where this takes 0.4-0.7 s, and its calls are as fast (0.1-0.25 ms; the Python
#: linker's are 2.5-5 ms, and a fit makes ~70). A wiring run in a fresh process: 23.3 -> 19.2 s
LOGP_MODE = Mode(linker="cvm", optimizer="o1")


def _compile(model: pm.Model) -> _Compiled:
    """Log density with gradient (:data:`LOGP_MODE`), and every posterior variable as a
    function of a batch of points (one call for all draws, where C compilation would cost more
    than it saves)."""
    outs = list(get_default_varnames(model.unobserved_value_vars, include_transformed=False))
    logp = model.logp()
    grads = pytensor.grad(logp, model.value_vars)
    point = model.initial_point()
    shapes = [np.shape(point[v.name]) for v in model.value_vars]
    batched = [
        pt.tensor(f"{v.name}_draws", shape=(None, *s), dtype=v.dtype)
        for v, s in zip(model.value_vars, shapes, strict=True)
    ]
    return _Compiled(
        model=model,
        names=[v.name for v in model.value_vars],
        shapes=shapes,
        start=np.concatenate([np.ravel(point[v.name]) for v in model.value_vars]).astype(float),
        logp_grad=model.compile_fn(
            [logp, *grads],
            inputs=model.value_vars,
            point_fn=False,
            mode=LOGP_MODE,
        ),
        outputs=pytensor.function(
            batched,
            vectorize_graph(outs, replace=dict(zip(model.value_vars, batched, strict=True))),
            mode="FAST_COMPILE",
        ),
        out_names=[v.name for v in outs],
    )


def _compiled(model: pm.Model, key: tuple | None, relabel: tuple[str, ...]) -> _Compiled:
    """The compiled functions for ``model``'s structure, reading ``model``'s data."""
    if key is None:  # nothing identifies what the graph bakes in (priors): compile afresh
        return _compile(model)
    full_key = _structure_key(model, key, relabel)
    c = _CACHE.get(full_key)
    if c is None:
        c = _CACHE[full_key] = _compile(model)
    else:  # the cached graph reads its own pm.Data: give it this fit's numbers
        feed_data(c.model, model)
    return c


def weyl_normal(chains: int, draws: int) -> np.ndarray:
    """``(chains, draws)`` standard normal quantiles of a golden-ratio Weyl sequence, each chain
    shifted by a fraction of one step: equidistributed within every half chain (split r-hat ~1),
    consecutive draws anticorrelated (ESS above the number of draws)."""
    t = np.arange(draws)
    shift = (np.arange(chains)[:, None] + 0.5) / (chains * draws)
    return norm.ppf((t[None, :] * _GOLDEN + shift + 0.5 / draws) % 1.0)


def fake_sample(
    model: pm.Model,
    settings: SamplerSettings,
    seed: int,
    key: tuple | None = None,
    relabel: tuple[str, ...] = (),
):
    """Drop-in for ``sample``/``sample_nutpie``/``sample_numpyro``: ``settings.chains x
    settings.draws`` designed draws around the mode (module docstring); ``tune`` is unused."""
    c = _compiled(model, key, relabel)
    sizes = [int(np.prod(s)) for s in c.shapes]
    splits = np.cumsum(sizes)[:-1]

    def unflat(x: np.ndarray) -> list[np.ndarray]:
        return [p.reshape(s) for p, s in zip(np.split(x, splits), c.shapes, strict=True)]

    def neg_logp(x: np.ndarray) -> tuple[float, np.ndarray]:
        lp, *grad = c.logp_grad(*unflat(x))
        if not np.isfinite(lp):
            return 1e10, np.zeros_like(x)
        return -float(lp), -np.concatenate([np.ravel(g) for g in grad])

    fit = minimize(neg_logp, c.start, jac=True, method="BFGS", options={"maxiter": MODE_STEPS})
    chains, draws = settings.chains, settings.draws
    direction = np.random.default_rng(seed).standard_normal(fit.x.size)
    s = weyl_normal(chains, draws).reshape(-1, 1)
    z = fit.x + FAKE_SD * s * direction
    parts = np.split(z, splits, axis=1)
    values = c.outputs(*[p.reshape(-1, *sh) for p, sh in zip(parts, c.shapes, strict=True)])
    posterior = {
        n: np.asarray(v).reshape(chains, draws, *np.shape(v)[1:])
        for n, v in zip(c.out_names, values, strict=True)
    }
    stats = {
        "diverging": np.zeros((chains, draws), dtype=bool),
        "lp": np.full((chains, draws), -fit.fun),
    }
    return _posterior_tree(model, posterior, stats, pm, {"sampler": "fake (tests only)"})


def install(monkeypatch, sampler: Callable = fake_sample) -> None:
    """Route every sampling entry point of the package to ``sampler`` (default
    :func:`fake_sample`)."""
    import uplift.value.clv as clv
    from uplift.models import sampling

    for name in ("sample", "sample_nutpie", "sample_numpyro"):
        monkeypatch.setattr(sampling, name, sampler)
    monkeypatch.setattr(clv, "sample", sampler)


REACHED = "REACHED SAMPLING"


def trap(*args, **kwargs):
    """A sampler that refuses: for checks that must stop before any fit."""
    raise RuntimeError(REACHED)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(monkeypatch, *args: str) -> CliResult:
    """``uplift *args`` through the console entry point :func:`uplift.cli.main` in this process
    (argv, Hydra, exit codes and output as in a shell), without a Python start-up per call."""
    from uplift import cli

    monkeypatch.setattr(sys, "argv", ["uplift", *args])
    monkeypatch.setattr(cli, "_STARTED", False)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
    return CliResult(code, out.getvalue(), err.getvalue())
