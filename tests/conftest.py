from __future__ import annotations

import pandas as pd
import pytest

from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic import default_arm_map, generate
from uplift.models import SamplerSettings

COLUMNS = ColumnMap(segments=("value_tier", "needs"))


@pytest.fixture(scope="session")
def arm_map():
    return default_arm_map()


@pytest.fixture(scope="session")
def synthetic(arm_map):
    return generate(arm_map, n_customers=40_000, seed=11)


@pytest.fixture(scope="session")
def customers(synthetic, arm_map):
    return validate_customers(synthetic.customers, COLUMNS, arm_map)


@pytest.fixture(scope="session")
def cells(customers) -> pd.DataFrame:
    return aggregate_cells(customers)


@pytest.fixture(scope="session")
def fast_sampler() -> SamplerSettings:
    return SamplerSettings(draws=500, tune=500, chains=2, seed=3)
