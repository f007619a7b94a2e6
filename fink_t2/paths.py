"""Where things live: the one place for data and model locations.

The shipped model files are package data (``fink_t2/data``); the real sample night ships with the
repository (``data/``, see ``data/README.md``); the full shared data sets are ``$FINK_T2_DATA``, else
``<repo>/../shared/data``, read when asked (never frozen at import), so every command and script
honours the variable.

>>> import os
>>> os.path.isdir(SAMPLE_NIGHT), os.path.isfile(DEFAULT_MODEL_PATH)
(True, True)
"""

from __future__ import annotations

import os
from pathlib import Path

#: the repository checkout (for a source install: the sample night, build/ and docs/ live there)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the model files shipped inside the package, and where the training commands write them
MODEL_DIR = Path(__file__).resolve().parent / "data"
#: the shipped ZTF model
DEFAULT_MODEL_PATH = str(MODEL_DIR / "t2.tflite")
#: the shipped Rubin (LSST ugrizy, nJy) model, written by `fink-t2 train --dataset plasticc --setting rubin --ship`
LSST_MODEL_PATH = str(MODEL_DIR / "t2_lsst.tflite")
#: where `fink-t2 train` keeps the float (Keras) model that `fink-t2 compress` reads
FLOAT_MODEL_DIR = REPO_ROOT / "build" / "model"
#: where `fink-t2 compress` writes its variants
COMPRESS_DIR = REPO_ROOT / "build" / "compress"
#: 124 real ZTF alerts of 2021-11-22, Fink science-stage parquet
SAMPLE_NIGHT = str(REPO_ROOT / "data" / "night_20211122_fink_science")
#: the environment variable naming the shared data sets
DATA_ENV = "FINK_T2_DATA"


def shared_data_dir() -> Path:
    """The full shared data sets: ``$FINK_T2_DATA``, else ``<repo>/../shared/data`` (read at each call)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def __getattr__(name):
    # SHARED_DATA reads the environment when it is looked up, not when this module is imported
    if name == "SHARED_DATA":
        return str(shared_data_dir())
    raise AttributeError(name)
