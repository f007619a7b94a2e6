"""What a t2 model's input is, as data: bands and their order, flux unit and zero point, window, layout.

A :class:`SequenceSpec` is written into every model file's contract (format 3) and read back from it, so
the same code builds the input of a ZTF g/r model or a Rubin ugrizy one: the bands are data, not code.

The shipped ZTF file predates this format: its contract (format 2) names neither unit nor zero point, and
:func:`spec_from_contract` reads it as the g/r µJy spec it implies, :data:`ZTF_SPEC` (magnitudes → µJy at
the AB zero point 23.9, built by :func:`fink_t2.core.sequences.build_sequences`).

>>> spec = SequenceSpec(bands=("g", "r"), band_codes=(1, 2), flux_unit="nJy", zero_point=31.4)
>>> spec.channels[:6], spec.channels[-4:]
(('flux_g', 'flux_r', 'measured_g', 'measured_r', 'detected_g', 'detected_r'), ('time', 'age', 'log_ndet', 'log_peak_flux'))
>>> spec_from_contract(spec.contract_fields()) == spec
True
>>> round(spec.to_ujy(1000.0), 6)  # 1000 nJy
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

#: contract format of the band-generic models (format 2: the ZTF file, bands g/r in µJy implied)
FORMAT = 3
#: the flux-input preprocessing of :func:`fink_t2.core.flux_sequences.build_flux_sequences`
FLUX_PREPROCESSING_VERSION = "t2-flux-v1"
#: how nodes are laid out: a regular time grid, or one node per measured night (the night's time a channel)
REPRESENTATIONS = ("grid", "epochs")
#: AB zero point of a flux of 1 µJy
ZERO_POINT_UJY = 23.9
LSST_BANDS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class SequenceSpec:
    """The input of a band-generic t2 model (see :mod:`fink_t2.core.flux_sequences`).

    ``bands``: names, in channel order. ``band_codes``: the other name each band may carry in input
    tables (ZTF ``fid``, PLAsTiCC ``passband``). ``zero_point``: AB magnitude of one ``flux_unit``.
    ``extra_channels``: per-alert scalars (host photo-z, ...) repeated at every node.
    """

    bands: tuple = LSST_BANDS
    band_codes: tuple = (0, 1, 2, 3, 4, 5)
    flux_unit: str = "nJy"
    zero_point: float = 31.4
    window_days: float = 365.0
    sequence_length: int = 100
    representation: str = "epochs"
    extra_channels: tuple = ()
    preprocessing_version: str = FLUX_PREPROCESSING_VERSION

    def __post_init__(self):
        if len(self.bands) != len(self.band_codes) or len(set(self.bands)) != len(self.bands) or not self.bands:
            raise ValueError(f"bands {self.bands!r} and band_codes {self.band_codes!r}: distinct, same length")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation {self.representation!r} is not one of {REPRESENTATIONS}")
        if not (self.window_days > 0 and self.sequence_length >= 2):
            raise ValueError("window_days must be > 0 and sequence_length >= 2")

    @property
    def channels(self) -> tuple:
        per_band = tuple(f"{kind}_{b}" for kind in ("flux", "measured", "detected") for b in self.bands)
        return (*per_band, "time", "age", "log_ndet", "log_peak_flux", *self.extra_channels)

    def to_ujy(self, flux):
        """Flux in this spec's unit → µJy."""
        return flux * 10.0 ** (-0.4 * (self.zero_point - ZERO_POINT_UJY))

    def contract_fields(self) -> dict:
        """The contract entries that describe this input (JSON types)."""
        return {"format": FORMAT, "bands": list(self.bands), "band_codes": list(self.band_codes),
                "flux_unit": self.flux_unit, "zero_point": self.zero_point, "window_days": self.window_days,
                "sequence_length": self.sequence_length, "representation": self.representation,
                "extra_channels": list(self.extra_channels), "channels": list(self.channels),
                "preprocessing_version": self.preprocessing_version}


#: what the format-2 contract of the shipped ZTF file implies: g/r (fid 1, 2), magnitudes → µJy
ZTF_SPEC = {"bands": ("g", "r"), "band_codes": (1, 2), "flux_unit": "uJy", "zero_point": ZERO_POINT_UJY}


def spec_from_contract(contract: dict) -> SequenceSpec | dict:
    """The input spec a contract declares; a format-2 (ZTF) contract → :data:`ZTF_SPEC` (a dict: its layout
    is :mod:`fink_t2.core.sequences`'s fixed one). ValueError if a format-3 contract is inconsistent."""
    if contract.get("format") == 2:
        return dict(ZTF_SPEC)
    keys = ("bands", "band_codes", "flux_unit", "zero_point", "window_days", "sequence_length", "representation",
            "extra_channels", "preprocessing_version")
    missing = [k for k in keys if k not in contract]
    if missing:
        raise ValueError(f"contract lacks {missing}")
    spec = SequenceSpec(**{k: tuple(contract[k]) if isinstance(contract[k], list) else contract[k] for k in keys})
    if spec.preprocessing_version != FLUX_PREPROCESSING_VERSION:
        raise ValueError(f"preprocessing_version {spec.preprocessing_version!r}, this fink-t2 builds "
                         f"{FLUX_PREPROCESSING_VERSION!r}")
    if list(contract.get("channels", ())) != list(spec.channels):
        raise ValueError(f"channels {contract.get('channels')!r} are not those of its spec {list(spec.channels)!r}")
    return spec
