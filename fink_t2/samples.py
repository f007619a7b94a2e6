"""Where the real sample data shipped with the repository lives (see data/README.md).

>>> import os
>>> os.path.isdir(SAMPLE_NIGHT)
True
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: 124 real ZTF alerts of 2021-11-22, Fink science-stage parquet
SAMPLE_NIGHT = str(REPO_ROOT / "data" / "night_20211122_fink_science")
#: the full shared data sets (override with $FINK_T2_DATA or the --data-dir options)
SHARED_DATA = os.environ.get("FINK_T2_DATA", str(REPO_ROOT.parent / "shared" / "data"))
