"""Shared fixtures: real data locations and one local Spark session for the whole run."""

import os
from pathlib import Path

import pytest

from fink_t2.samples import SAMPLE_NIGHT, SHARED_DATA

ALERTS = Path(SHARED_DATA) / "ztf_alerts"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(SHARED_DATA)
    if not path.is_dir():
        pytest.fail(f"shared data not found at {path}: set FINK_T2_DATA")
    return path


@pytest.fixture(scope="session")
def sample_night() -> str:
    return SAMPLE_NIGHT


@pytest.fixture(scope="session")
def spark():
    from fink_t2.stream import get_spark

    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYTHON", "python3"))
    session = get_spark("local[2]", app_name="fink-t2-tests")
    yield session
    session.stop()
