"""uplift.app.strata_run (WIP): strata and deviation draws from a run's fits."""

from __future__ import annotations

import numpy as np

import uplift
from uplift import pipeline
from uplift.app.strata_run import customer_strata
from uplift.optimize.strata import segment_of


def test_strata_partition_segments_and_deviations_average_to_zero(fake_sampler, tmp_path):
    config = uplift.compose_config(
        [
            "data.synthetic.outcomes=conversion",
            "data.synthetic.n_customers=6000",
            "sampler=fast",
            "data.columns.covariates=[value_tier,needs]",
            "model.covariate_model.enabled=true",
            "model.covariate_model.method=approximate",
        ]
    )
    prep = pipeline.prepare(config, tmp_path)
    fits = pipeline.fit_tactics(prep.cells, prep.data, config)
    models, scores = pipeline.score_customers(config, prep.data)
    assert scores is not None
    costs = {a.name: a.cost for a in prep.data.arm_map.treated}
    uplift_draws = {t: f.draws() for t, f in fits.items()}
    st = customer_strata(prep.data, uplift_draws, prep.values, costs, models, scores, 3)
    frame = prep.data.frame
    assert st.sizes.sum() == len(frame)
    per_segment = st.sizes.groupby([segment_of(s) for s in st.sizes.index]).size()
    sizes = frame["segment"].value_counts()
    assert (per_segment == np.minimum(3, sizes.reindex(per_segment.index))).all()
    S = next(iter(uplift_draws.values())).sizes["sample"]
    for dev in st.deviation.values():
        assert dev.shape == (S, len(st.sizes))
        # the strata's customer-weighted deviations cancel within each segment, draw by draw
        w = st.sizes.reindex(dev.columns).to_numpy()
        parent = np.array([segment_of(c) for c in dev.columns])
        for seg in np.unique(parent):
            m = parent == seg
            np.testing.assert_allclose(dev.to_numpy()[:, m] @ w[m], 0.0, atol=1e-9 * w[m].sum())
