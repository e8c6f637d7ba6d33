"""One place that turns sampler settings into posterior draws, whatever the backend.

Backends (``sampler.backend``):

* ``nutpie`` (default) and ``pymc``: NUTS, see :func:`sample_nutpie` and :func:`sample`.
* ``numpyro``: NUTS from numpyro on JAX. :func:`sample` goes through
  ``pm.sample(nuts_sampler="numpyro")``; model fits use :func:`sample_numpyro`, which compiles
  the chain once per graph structure and reuses it for every later chain and tactic (numpyro's
  own driver recompiles per chain and per fit, and compiling is nearly all of its cost).
* ``advi``: variational inference (``pm.fit``), fast and approximate, see :func:`fit_advi`. Its
  draws carry what :func:`uplift.models.diagnostics.compute_diagnostics` needs to judge the
  approximation by Pareto-smoothed importance sampling instead of r-hat/ESS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm

from uplift import progress
from uplift.models.settings import SamplerBackend, SamplerSettings, VIMethod


def _quiet() -> None:
    for name in (
        "pymc",
        "pymc.sampling",
        "pymc.stats.convergence",
        "pymc.variational",
        "jax._src.xla_bridge",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- nutpie ------------------------------------------------------------------------------------

#: nutpie compiled models, with the graph each was compiled from: its initial-point function
#: reads that graph's ``pm.Data`` (a form flag moves a centred variable's starting point)
_COMPILED: dict[tuple, tuple[Any, pm.Model]] = {}


def _relabel(tree, coords: dict[str, list]):
    """Put this fit's labels on dims whose values a reused compiled model does not know."""
    for group in list(tree.children):
        ds = tree[group].to_dataset()
        labels = {d: v for d, v in coords.items() if d in ds.dims}
        if labels:
            tree[group] = ds.assign_coords(labels)
    return tree


def _structure_key(model: pm.Model, key: tuple | None, relabel: tuple[str, ...]) -> tuple:
    """What a compiled graph depends on beyond ``key``: fixed coords and data shapes."""
    data = {v.name: v.get_value() for v in model.data_vars}
    fixed = tuple((d, tuple(map(str, v))) for d, v in model.coords.items() if d not in relabel)
    sizes = tuple((d, len(v)) for d, v in model.coords.items())
    return (key, fixed, sizes, tuple((k, np.shape(v)) for k, v in sorted(data.items())))


def feed_data(into: pm.Model, source: pm.Model) -> None:
    """Give ``into``, a graph compiled earlier for the same structure (:func:`_structure_key`),
    the ``pm.Data`` values of ``source``: a cached compiled function reads its own graph's data."""
    mine = {v.name: v for v in into.data_vars}
    for v in source.data_vars:
        mine[v.name].set_value(v.get_value())


def sample_nutpie(
    model: pm.Model,
    settings: SamplerSettings,
    seed: int,
    key: tuple | None = None,
    relabel: tuple[str, ...] = (),
):
    """nutpie sampling that compiles a graph once and swaps in new data for later fits.

    Compiling dominates a fit (~4-17 s vs ~0.5 s of sampling, see bench/fit_scaling.py), and
    tactics share one graph structure, so each structure is compiled once per process; the
    ``pm.Data`` containers carry each fit's numbers. Draws equal those of a fresh compile with the
    same seed (tested). ``key`` must identify everything baked into the graph (class, priors);
    coords of ``relabel`` dims may differ between fits (e.g. arm names), all others must match.
    ``key=None`` compiles afresh and caches nothing.
    """
    import nutpie

    data = {v.name: v.get_value() for v in model.data_vars}
    fixed = tuple((d, tuple(map(str, v))) for d, v in model.coords.items() if d not in relabel)
    full_key = (key, fixed, tuple((k, np.shape(v)) for k, v in sorted(data.items())))
    cached = _COMPILED.get(full_key) if key is not None else None
    if cached is None:
        with progress.stage("compiling the model"):  # seconds: say so on the stage's line
            compiled = nutpie.compile_pymc_model(model)
        if key is not None:
            _COMPILED[full_key] = (compiled, model)
    else:
        compiled, own = cached
        feed_data(own, model)  # the initial points: drawn by a function of the compiled graph
        compiled = compiled.with_data(**data)
    # progress: on when a run shows its stages on a terminal (uplift.progress), through
    # nutpie's callback onto the stage's line; nutpie's own bar would draw over those lines
    tree = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        seed=seed,
        progress_bar=False,
        progress_callback=progress.sampling_callback(),
        save_warmup=False,
        target_accept=settings.target_accept,
    )
    return _relabel(tree, {d: list(model.coords[d]) for d in relabel})


# -- numpyro -----------------------------------------------------------------------------------


def _require_numpyro() -> None:
    import importlib.util

    if importlib.util.find_spec("numpyro") is None:
        raise ImportError(
            "sampler.backend=numpyro needs numpyro and JAX: pip install 'uplift[jax]' "
            "(or use sampler=nutpie)"
        )


def _jaxify(model: pm.Model, outputs: list) -> Callable:
    """``outputs`` as a JAX function of ``(*value_vars, *data_vars)``.

    PyMC's own JAX path bakes ``pm.Data`` in as constants, so every tactic is a new program;
    taking the data as arguments lets one compiled program serve all tactics of a structure.
    """
    import pymc.sampling.jax  # noqa: F401  (registers PyMC's JAX dispatches, e.g. CheckParameterValue)
    import pytensor.tensor as pt
    from pytensor.compile import SharedVariable
    from pytensor.compile.mode import JAX
    from pytensor.graph import FunctionGraph
    from pytensor.graph.basic import Variable
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs
    from pytensor.link.jax.dispatch import jax_funcify

    data = list(model.data_vars)
    data_in = [d.type() for d in data]
    outs = clone_replace(outputs, replace=dict(zip(data, data_in, strict=True)))
    other = [v for v in graph_inputs(outs) if isinstance(v, SharedVariable)]
    consts: dict[Variable, Variable] = {v: pt.constant(v.get_value(borrow=True)) for v in other}
    outs = clone_replace(outs, replace=consts)
    fgraph = FunctionGraph(inputs=[*model.value_vars, *data_in], outputs=outs, clone=True)
    JAX.optimizer.rewrite(fgraph)
    return jax_funcify(fgraph)


@dataclass
class _NumpyroRunner:
    """Compiled pieces for one graph structure and one (tune, draws, target_accept)."""

    names: list[str]
    logp: Callable  # (z, data) -> log density, jitted
    chain: Any  # (rng_key, z0, data) -> per-draw outputs, jitted (``.lower`` compiles it)
    post: Callable  # (z batch, data) -> posterior variables, jitted
    compiled: Any = None


_NUMPYRO: dict[tuple, _NumpyroRunner] = {}


def _numpyro_runner(model: pm.Model, settings: SamplerSettings) -> _NumpyroRunner:
    import jax
    from numpyro.infer.hmc import hmc
    from pymc.util import get_default_varnames

    logp_fn = _jaxify(model, [model.logp()])
    outs = list(get_default_varnames(model.unobserved_value_vars, include_transformed=False))
    post_fn = _jaxify(model, outs)
    tune, draws, target = settings.tune, settings.draws, settings.target_accept

    def potential_gen(*data):
        return lambda z: -logp_fn(*z, *data)[0]

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")

    def chain(rng_key, z0, data):
        # numpyro's NUTS kernel with its default windowed adaptation (diagonal mass matrix),
        # exactly as numpyro.infer.MCMC runs it, but as one program with the data as arguments
        state = init_kernel(
            z0, num_warmup=tune, target_accept_prob=target, model_args=data, rng_key=rng_key
        )
        state, _ = jax.lax.scan(
            lambda s, _: (sample_kernel(s, model_args=data), None), state, None, length=tune
        )

        def draw(s, _):
            s = sample_kernel(s, model_args=data)
            stats = (
                s.diverging,
                s.num_steps,
                s.accept_prob,
                -s.potential_energy,
                s.energy,
                s.adapt_state.step_size,
            )
            return s, (s.z, stats)

        return jax.lax.scan(draw, state, None, length=draws)[1]

    def post(z, data):
        return jax.vmap(lambda zi: post_fn(*zi, *data))(z)

    return _NumpyroRunner(
        names=[v.name for v in outs],
        logp=jax.jit(lambda z, data: logp_fn(*z, *data)[0]),
        chain=jax.jit(chain),
        post=jax.jit(post),
    )


def _initial_points(
    model: pm.Model, logp: Callable, data: tuple, chains: int, seed: int
) -> list[np.ndarray]:
    """PyMC's jittered initial points (U(-1, 1) on the unconstrained space), one per chain,
    redrawn until the log density is finite; stacked per value variable."""
    from pymc.initial_point import make_initial_point_fn

    ipfn = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs))
    names = [v.name for v in model.value_vars]
    points = []
    for c in range(chains):
        for attempt in range(10):
            point = ipfn(int(np.random.SeedSequence([seed, c, attempt]).generate_state(1)[0]))
            z = [np.asarray(point[n]) for n in names]
            if np.isfinite(float(logp(z, data))):
                break
        else:
            raise RuntimeError(
                "no finite log density at 10 jittered initial points: check the priors and data"
            )
        points.append(z)
    return [np.stack(v) for v in zip(*points, strict=True)]


def _posterior_tree(model: pm.Model, posterior: dict, stats: dict, library: Any, attrs: dict):
    """ArviZ DataTree with the model's coords/dims, as PyMC builds it for external samplers."""
    from arviz_base import from_dict, make_attrs
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )

    coords, dims = coords_and_dims_for_inferencedata(model)
    groups: dict[str, dict] = {"posterior": posterior, "sample_stats": stats}
    for name, found in (
        ("observed_data", find_observations(model)),
        ("constant_data", find_constants(model)),
    ):
        if found:
            groups[name] = found
    tree = from_dict(
        data=groups,
        coords=coords,
        dims=dims,
        sample_dims=["chain", "draw"],
        attrs={"posterior": make_attrs(attrs, inference_library=library)},
    )
    tree.attrs.update(attrs)
    return tree


def sample_numpyro(
    model: pm.Model,
    settings: SamplerSettings,
    seed: int,
    key: tuple | None = None,
    relabel: tuple[str, ...] = (),
):
    """numpyro NUTS that compiles one chain program per graph structure and reuses it.

    ``pm.sample(nuts_sampler="numpyro")`` recompiles for every fit (``pm.Data`` become constants)
    and, with sequential chains, for every chain (numpyro's jit cache misses on each chain with
    JAX 0.12). Here the data are arguments of one jitted program, compiled once per ``(key,
    coords, shapes, tune, draws, target_accept)`` and run for each chain in a thread pool (chains
    are independent programs, so they use both cores; results do not depend on scheduling).
    Measured on 6 tactics x 48 segments, 4 x 2000 draws: 27.9 s against 46.6 s through
    ``pm.sample`` (later tactics 3.2 s against 7-9 s; bench/backends.py). Draws equal those of a
    fresh compile with the same seed (tested). ``key``/``relabel`` as in :func:`sample_nutpie`;
    ``key=None`` compiles afresh and caches nothing.
    """
    _require_numpyro()
    import jax
    import numpyro

    _quiet()
    full_key = (
        *_structure_key(model, key, relabel),
        settings.tune,
        settings.draws,
        settings.target_accept,
    )
    runner = _NUMPYRO.get(full_key) if key is not None else None
    if runner is None:
        runner = _numpyro_runner(model, settings)
        if key is not None:
            _NUMPYRO[full_key] = runner
    data = tuple(jax.numpy.asarray(v.get_value()) for v in model.data_vars)
    z0 = _initial_points(model, runner.logp, data, settings.chains, seed)
    keys = jax.random.split(jax.random.PRNGKey(seed % 2**32), settings.chains)
    inits = [[v[c] for v in z0] for c in range(settings.chains)]
    if runner.compiled is None:
        runner.compiled = runner.chain.lower(keys[0], inits[0], data).compile()

    def one(c: int):
        return jax.block_until_ready(runner.compiled(keys[c], inits[c], data))

    workers = max(1, min(settings.chains, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        runs = list(pool.map(one, range(settings.chains)))
    z = [np.stack([np.asarray(r[0][i]) for r in runs]) for i in range(len(z0))]
    flat = [v.reshape(-1, *v.shape[2:]) for v in z]
    values = runner.post(flat, data)
    shape = (settings.chains, settings.draws)
    posterior = {
        n: np.asarray(v).reshape(*shape, *np.shape(v)[1:])
        for n, v in zip(runner.names, values, strict=True)
    }
    stat_names = ("diverging", "n_steps", "acceptance_rate", "lp", "energy", "step_size")
    stats = {n: np.stack([np.asarray(r[1][i]) for r in runs]) for i, n in enumerate(stat_names)}
    stats["tree_depth"] = np.log2(stats["n_steps"]).astype(int) + 1
    return _posterior_tree(
        model,
        posterior,
        stats,
        numpyro,
        {"inference_method": "nuts", "sampler": "numpyro", "tuning_steps": settings.tune},
    )


# -- ADVI --------------------------------------------------------------------------------------


class _IterateAverage:
    """``pm.fit`` callback: Polyak-Ruppert average of the variational parameters.

    With a constant Adam step the parameters keep jittering by ~``vi_learning_rate`` around the
    optimum, which is a sizeable fraction of a tight posterior's SD (logit SD ~0.07 for a few
    hundred conversions). Averaging the last quarter of the iterates removes that noise: on the
    two-arm Beta-Binomial with 10,000 steps, RMS error of the posterior mean uplift fell from
    0.21 to 0.034 posterior SDs over 8 seeds (tests/test_backends.py has the exact answer).
    """

    def __init__(self, start: int) -> None:
        self.start, self.count = start, 0
        self.total: list[Any] | None = None

    def __call__(self, approx, losses, i: int) -> None:
        if i < self.start:
            return
        vals = [p.get_value() for p in approx.params]
        self.total = (
            vals if self.total is None else [t + v for t, v in zip(self.total, vals, strict=True)]
        )
        self.count += 1

    def apply(self, approx) -> None:
        if self.count and self.total is not None:  # total is set with the first count
            for p, t in zip(approx.params, self.total, strict=True):
                p.set_value(t / self.count)


def fit_advi(model: pm.Model, settings: SamplerSettings, seed: int):
    """ADVI (``pm.fit``, Adam, fixed budget, last-quarter iterate averaging) and
    ``chains x draws`` draws from the fit.

    Each draw is taken on the unconstrained space as ``z = mu + L eps`` and keeps ``log_q``, the
    Gaussian density of the approximation, and ``lp``, the model's log density there (Jacobian
    included), in ``sample_stats``: the importance ratios ``p/q`` of the very draws returned,
    which the diagnostics turn into Pareto k-hat (Yao et al. 2018). The posterior group holds
    every model variable and deterministic, shaped ``(chain, draw, ...)`` like MCMC output.
    """
    _quiet()
    method = "advi" if settings.vi_method == VIMethod.meanfield else "fullrank_advi"
    fit_seed, draw_seed = np.random.SeedSequence(seed).generate_state(2)
    average = _IterateAverage(start=settings.vi_iterations - settings.vi_iterations // 4)
    # PyTensor 3.3 logs a traceback when its FuseElemwise rewrite fails on the ADVI gradient of
    # ZeroSumNormal segment effects ("cannot be done inplace on an input with broadcasted
    # dimensions"); the rewrite is skipped and the compiled step is correct, so mute that logger
    rewriter_log = logging.getLogger("pytensor.graph.rewriting.basic")
    level = rewriter_log.level
    rewriter_log.setLevel(logging.CRITICAL)
    with model:
        try:
            approx = pm.fit(
                n=settings.vi_iterations,
                method=method,
                random_seed=int(fit_seed),
                progressbar=False,
                obj_optimizer=pm.adam(learning_rate=settings.vi_learning_rate),
                callbacks=[average],
            )
        except FloatingPointError as e:
            raise FloatingPointError(
                f"ADVI diverged ({str(e).splitlines()[0]}): lower sampler.vi_learning_rate "
                f"(now {settings.vi_learning_rate}) or use an MCMC backend (sampler=nutpie)"
            ) from None
        finally:
            rewriter_log.setLevel(level)
    average.apply(approx)
    mu = np.asarray(approx.mean.eval(), dtype=np.float64)
    if settings.vi_method == VIMethod.meanfield:
        chol = np.diag(np.asarray(approx.std.eval(), dtype=np.float64))
    else:
        chol = np.asarray(approx.L.eval(), dtype=np.float64)
    ordering = approx.groups[0].ordering
    chains, draws = settings.chains, settings.draws
    n = chains * draws
    eps = np.random.default_rng(int(draw_seed)).standard_normal((n, mu.size))
    z = mu + eps @ chol.T
    log_q = -0.5 * np.sum(eps**2, axis=1) - 0.5 * mu.size * np.log(2 * np.pi)
    log_q = log_q - np.sum(np.log(np.diag(chol)))

    from pymc.util import get_default_varnames

    outs = list(get_default_varnames(model.unobserved_value_vars, include_transformed=False))
    fn = model.compile_fn([model.logp(), *outs], inputs=model.value_vars, point_fn=False)
    slices = [(ordering[v.name][1], ordering[v.name][2]) for v in model.value_vars]
    lp = np.empty(n)
    values: list[list[np.ndarray]] = [[] for _ in outs]
    for i in range(n):
        res = fn(*[z[i, s].reshape(shape) for s, shape in slices])
        lp[i] = res[0]
        for acc, v in zip(values, res[1:], strict=True):
            acc.append(v)
    posterior = {
        v.name: np.stack(acc).reshape(chains, draws, *np.shape(acc[0]))
        for v, acc in zip(outs, values, strict=True)
    }
    stats = {"lp": lp.reshape(chains, draws), "log_q": log_q.reshape(chains, draws)}
    hist = np.asarray(approx.hist)
    tail = hist[-max(1, len(hist) // 10) :]
    return _posterior_tree(
        model,
        posterior,
        stats,
        pm,
        {
            "inference_method": method,
            "vi_iterations": settings.vi_iterations,
            "vi_learning_rate": settings.vi_learning_rate,
            "vi_final_loss": float(np.mean(tail)) if tail.size else float("nan"),
        },
    )


# -- dispatch ----------------------------------------------------------------------------------


def sample(model: pm.Model, settings: SamplerSettings, seed: int):
    """Draw from ``model``'s posterior; returns ArviZ data (an xarray DataTree)."""
    _quiet()
    if settings.backend == SamplerBackend.advi:
        return fit_advi(model, settings, seed)
    kwargs: dict[str, object] = {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "random_seed": seed,
        "progressbar": False,
        "nuts_sampler": settings.backend.value,
        "target_accept": settings.target_accept,
        "compute_convergence_checks": False,
    }
    if settings.backend == "pymc":
        kwargs["cores"] = min(settings.chains, os.cpu_count() or 1)
    if settings.backend == "numpyro":
        _require_numpyro()
        import jax

        # "parallel" (pmap over host devices) compiles once for all chains; numpyro runs
        # "sequential" chains each through a fresh compile, and "vectorized" NUTS waits for the
        # longest tree of all chains at every step (measured slowest, see conf/sampler/numpyro.yaml)
        parallel = jax.local_device_count() >= settings.chains
        kwargs["nuts"] = {"chain_method": "parallel" if parallel else "sequential"}
    with model:
        return pm.sample(**kwargs)
