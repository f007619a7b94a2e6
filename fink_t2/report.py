"""What t2 found in a replayed night: a self-contained HTML page (``fink-t2 report``).

Reads the parquet written by ``fink-t2 replay`` through the file sink's
exactly-once log (:func:`fink_t2.stream.output.committed_files`), and shows the alerts
per predicted class, the top probability per class, the alerts each cut rejected,
the run's throughput (the replay's summary, :func:`fink_t2.stream.output.read_summary`),
and the light curves of each class's top candidates. Figures are PNGs written
beside the HTML and embedded in it as ``data:`` URIs: the page opens without network.

The survey is told by the output's columns (:class:`Survey`): ZTF alerts (``objectId``, ``candid``) show g/r
magnitudes and upper limits; Rubin alerts (``diaObjectId``, ``diaSourceId``, :mod:`fink_t2.stream.rubin_stage`)
show their six bands u g r i z y as flux (nJy) vs MJD, detections filled and forced photometry open, the
probabilities of the Rubin model's classes, and the Rubin statuses (:mod:`fink_t2.core.rubin_cuts`).
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fink_t2.core import cuts, rubin_cuts
from fink_t2.core import raw_filter as raw
from fink_t2.stream.output import SUMMARY_FILE, committed_files, last_processing_run, read_summary
from fink_t2.stream.survey import output_survey as survey_of_output

COLUMNS = ["objectId", "candid", "t2", "t2_status", "t2_class", "cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim"]
BANDS = {1: ("g", "green"), 2: ("r", "red")}
#: Rubin's bands, in wavelength order, and their colours in the light curves
RUBIN_BANDS = {"u": "darkviolet", "g": "green", "r": "red", "i": "darkorange", "z": "saddlebrown", "y": "black"}
RUBIN_COLUMNS = ["diaObjectId", "diaSourceId", "t2", "t2_status", "t2_class", "cmidpointMjdTai", "cpsfFlux",
                 "cpsfFluxErr", "cband", "fmidpointMjdTai", "fpsfFlux", "fpsfFluxErr", "fband"]
TOP_N = 5
#: probability histograms per row of the figure (Rubin's model has 14 classes)
HISTOGRAMS_PER_ROW = 5
#: what each ``t2_status`` means, in the order the cuts are checked (thresholds: fink_t2.core.cuts, .raw_filter)
STATUS_MEANING = {
    cuts.STATUS_OK: "passed every cut: classified by t2 (t2_class set, t2 holds its probabilities)",
    cuts.STATUS_UNREADABLE: "an input file (or a damaged part of one) that could not be decoded: one row stands for it",
    cuts.STATUS_BAD_QUALITY: f"raw alert failing Fink's quality cuts (nbad > {raw.MAX_NBAD}, rb < {raw.MIN_RB}, or i band)",
    cuts.STATUS_BOGUS: f"raw alert whose deep real-bogus score drb is below {raw.MIN_DRB}",
    cuts.STATUS_PS1_STAR: f"raw alert on a Pan-STARRS1 point source (within {raw.PS1_MAX_DISTANCE_ARCSEC}\", "
                          f"sgscore1 ≥ {raw.PS1_MIN_SGSCORE}): a variable star",
    cuts.STATUS_GAIA_STAR: f"raw alert on a Gaia source brighter than G = {raw.GAIA_MAX_MAG} (within "
                           f"{raw.GAIA_MAX_DISTANCE_ARCSEC}\"): a variable star",
    cuts.STATUS_NEGATIVE_DIFFERENCE: "raw alert whose detection is a negative difference (isdiffpos f)",
    cuts.STATUS_MALFORMED: "history arrays (cjd, cfid, cmagpsf) of different lengths",
    cuts.STATUS_ASTEROID: f"a known solar-system object (roid = {cuts.ASTEROID_ROID})",
    cuts.STATUS_GALACTIC: "cross-match (cdsxmatch) not compatible with an extragalactic host",
    cuts.STATUS_TOO_OLD: f"first detected more than {cuts.MAX_AGE_DAYS:g} days before the alert",
    cuts.STATUS_FEW_DETECTIONS: f"fewer than {cuts.MIN_EPOCHS} epochs of positive g/r detections in the alert's 30 days",
}

#: what each Rubin ``t2_status`` means (thresholds: fink_t2.core.rubin_cuts)
RUBIN_STATUS_MEANING = {
    cuts.STATUS_OK: "passed every Rubin cut: classified by t2 (t2_class set, t2 holds its probabilities)",
    cuts.STATUS_UNREADABLE: STATUS_MEANING[cuts.STATUS_UNREADABLE],
    rubin_cuts.STATUS_SSO: "a known solar-system object (diaSource.ssObjectId or ssSource.ssObjectId names one)",
    cuts.STATUS_TOO_OLD: f"first detected more than {rubin_cuts.MAX_AGE_DAYS:g} days before the alert",
    cuts.STATUS_FEW_DETECTIONS: f"fewer than {rubin_cuts.MIN_DETECTIONS} detections (diaSource + prvDiaSources, "
                                "finite flux and positive error, bands ugrizy) in the model's window",
    cuts.STATUS_MALFORMED: "detection or forced-photometry arrays of different lengths",
}

PAGE = Template("""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fink-t2 report: $name</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}</style></head><body>
<h1>fink-t2 report: $name</h1>
<p>Output <code>$output</code>: <b><span id="total">$total</span></b> alerts (committed files only),
<span id="classified">$classified</span> classified by t2.</p>
<h2>Throughput of the last replay that processed alerts</h2><p>$throughput</p>
<h2>Alerts per status (what each cut rejected)</h2>
<p>Every alert gets one <code>t2_status</code>: <code>ok</code> when t2 classified it, else the first cut it
failed (its <code>t2</code> probabilities are then all −1 and <code>t2_class</code> is empty).</p>
<table id="status"><tr><th>t2_status</th><th>alerts</th><th>meaning</th></tr>$status_rows</table>
<h2>Alerts per predicted class</h2>
<table id="classes"><tr><th>t2_class</th><th>alerts</th></tr>$class_rows</table>
$counts_img
<h2>Top probability per class</h2>
$proba_img
<h2>Top candidates per class</h2>
<p>The $top_n objects t2 gives each class with the highest probability: <b>one row per object</b> (its alert with
the highest probability of that class, when t2 classified several of its alerts), with that alert's $light_curve.</p>
$candidates
</body></html>
""")


def output_survey(output_dir) -> "Survey":
    """The :class:`Survey` of a replay output, told by its columns (:func:`fink_t2.stream.survey.output_survey`)."""
    _committed(output_dir)
    return RUBIN if survey_of_output(output_dir) == RUBIN.name else ZTF


def _committed(output_dir) -> list[str]:
    if not Path(output_dir).is_dir():
        raise FileNotFoundError(f"replay output {output_dir} does not exist")
    files = committed_files(output_dir)
    if not files:
        raise ValueError(f"no committed parquet in {output_dir}: run fink-t2 replay first")
    return files


def load_output(output_dir, survey: "Survey | None" = None) -> pd.DataFrame:
    """The committed alerts of a replay output as pandas (the columns the report needs, per survey: ``survey``,
    else told by :func:`output_survey`)."""
    survey = survey or output_survey(output_dir)
    df = ds.dataset(_committed(output_dir), format="parquet").to_table(columns=survey.columns).to_pandas()
    df["t2"] = df["t2"].map(lambda m: dict(m) if m is not None else {})
    df["proba"] = [row.t2.get(row.t2_class, np.nan) if row.t2_class else np.nan for row in df.itertuples()]
    return df


def _png(fig: Figure, path: Path) -> str:
    """Write ``fig`` to ``path`` and return it as a data URI ``<img>``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    path.write_bytes(buffer.getvalue())
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in (values if values is not None else [])], dtype=float)


def plot_light_curve(ax, alert) -> None:
    """g/r magnitudes vs days since the first detection; upper limits (null magpsf) as open triangles."""
    jd, mag, err, lim = (_floats(alert[c]) for c in ("cjd", "cmagpsf", "csigmapsf", "cdiffmaglim"))
    fid = np.asarray(alert["cfid"] if alert["cfid"] is not None else [], dtype=float)
    detected = ~np.isnan(mag)
    days = jd - (np.nanmin(jd[detected]) if detected.any() else np.nanmin(jd, initial=0.0))
    for band, (name, color) in BANDS.items():
        det, upper = (fid == band) & detected, (fid == band) & ~detected & ~np.isnan(lim)
        ax.errorbar(days[det], mag[det], yerr=err[det], fmt="o", ms=4, color=color, label=name)
        ax.plot(days[upper], lim[upper], "v", mfc="none", color=color, label=f"{name} upper limit")
    ax.invert_yaxis()
    ax.set(xlabel="days since first detection", ylabel="magnitude")


def plot_rubin_light_curve(ax, alert) -> list[str]:
    """Rubin flux (nJy) vs MJD in each band: detections (``c*``: prvDiaSources and the alert's diaSource) filled
    with error bars, forced photometry (``f*``) open squares. Returns the bands drawn."""
    drawn = []
    for band, color in RUBIN_BANDS.items():
        for prefix, style in (("c", {"fmt": "o", "ms": 4, "color": color, "label": band}),
                              ("f", {"fmt": "s", "ms": 3, "mfc": "none", "alpha": 0.6, "color": color,
                                     "label": f"{band} forced"})):
            bands = np.asarray(alert[prefix + "band"] if alert[prefix + "band"] is not None else [], dtype=object)
            mjd, flux, err = (_floats(alert[prefix + c])[bands == band] if len(bands) else np.empty(0)
                              for c in ("midpointMjdTai", "psfFlux", "psfFluxErr"))
            if len(mjd):
                ax.errorbar(mjd, flux, yerr=err, **style)
                drawn.append(band)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_ylim(*_flux_range(alert))
    ax.set(xlabel="MJD (TAI)", ylabel="PSF flux (nJy)")
    return sorted(set(drawn), key=list(RUBIN_BANDS).index)


def _flux_range(alert) -> tuple[float, float]:
    """Y limits: every detection with its error bar, and the forced photometry but its 5 % most extreme points
    (a forced measurement far off, e.g. -1e5 nJy on a bad subtraction, would flatten the light curve)."""
    flux, err = _floats(alert["cpsfFlux"]), np.nan_to_num(_floats(alert["cpsfFluxErr"]))
    forced = _floats(alert["fpsfFlux"])
    forced = forced[np.isfinite(forced)]
    values = np.concatenate([flux - err, flux + err, np.percentile(forced, [2.5, 97.5]) if len(forced) else [], [0.0]])
    low, high = np.nanmin(values), np.nanmax(values)
    pad = 0.08 * (high - low or 1.0)
    return low - pad, high + pad


@dataclass(frozen=True)
class Survey:
    """What the report reads and shows of one survey's output."""

    name: str
    columns: list
    object_id: str  # the object's column, one row per object in the candidate tables
    alert_id: str
    status_meaning: dict
    light_curve: str  # what the light curves show, in the page's words
    plot: Callable  # plot(ax, alert) -> the bands drawn


ZTF = Survey("ztf", COLUMNS, "objectId", "candid", STATUS_MEANING, "g/r light curve",
             lambda ax, alert: plot_light_curve(ax, alert) or [])
RUBIN = Survey("rubin", RUBIN_COLUMNS, "diaObjectId", "diaSourceId", RUBIN_STATUS_MEANING,
               "u g r i z y light curve (PSF flux in nJy vs MJD; detections filled, forced photometry open)",
               plot_rubin_light_curve)


def throughput_text(summary: dict | None) -> str:
    """The report's throughput paragraph: the last run that processed alerts (a rerun that found nothing new
    to do is said as such, never shown as 0 alerts/s), from the replay's summary.

    >>> throughput_text({"alerts_processed_this_run": 0, "last_processing_run": {"alerts_processed": 10,
    ...     "wall_time_s": 2.0, "alerts_per_s": 5.0, "finished_utc": "2026-01-01T00:00:00+00:00"}})[:62]
    '10 alerts processed in 2.0 s: <b><span id="alerts_per_s">5.0</'
    """
    if summary is None:
        return f"not recorded (no {SUMMARY_FILE}: output of an older fink-t2 replay)"
    last = last_processing_run(summary)
    if last is None:
        return "no replay has processed any alert into this output yet"
    text = (f"{last['alerts_processed']} alerts processed in {last['wall_time_s']} s: "
            f"<b><span id=\"alerts_per_s\">{last['alerts_per_s']}</span></b> alerts/s (wall time, Spark start-up included"
            + (f", run finished {html.escape(last['finished_utc'])} UTC)" if last.get("finished_utc") else ")"))
    if summary.get("alerts_processed_this_run", 0) == 0:
        text += ". The latest run found nothing new to process (every alert of the night was already in the output)."
    return text


def write_report(output_dir, html_path=None, top_n: int = TOP_N) -> dict:
    """Write the HTML report of a replay output (default ``OUTPUT/_report/report.html``) and its PNGs."""
    output_dir = Path(output_dir)
    survey = output_survey(output_dir)
    df = load_output(output_dir, survey)
    html_path = Path(html_path) if html_path else output_dir / "_report" / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    png = lambda name: html_path.with_name(f"{html_path.stem}_{name}.png")
    classes = list(next((m for m in df.t2 if m), {})) or sorted(df.t2_class.dropna().unique())
    status = {k: int(v) for k, v in df.t2_status.fillna("null").value_counts().sort_index().items()}
    per_class = {c: int((df.t2_class == c).sum()) for c in classes}
    rows = lambda counts, attr, meaning=None: "".join(
        f'<tr data-{attr}="{html.escape(k)}"><td>{html.escape(k)}</td><td>{v}</td>'
        + (f'<td style="text-align:left">{html.escape(meaning.get(k, ""))}</td>' if meaning is not None else "")
        + "</tr>" for k, v in counts.items()
    )

    fig = Figure(figsize=(11, 3.2))
    for ax, counts, name in zip(fig.subplots(1, 2), (status, per_class), ("t2_status", "t2_class")):
        ax.barh(list(counts), list(counts.values()), color="steelblue")
        ax.set(title=f"alerts per {name}", xlabel="alerts", ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    counts_img = _png(fig, png("counts"))

    ncols = min(max(len(classes), 1), HISTOGRAMS_PER_ROW)
    nrows = -(-max(len(classes), 1) // ncols)
    fig = Figure(figsize=(3 * ncols, 2.8 * nrows), layout="constrained")
    grid = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True)).ravel()
    for ax in grid[len(classes):]:
        ax.set_visible(False)
    for ax, cls in zip(grid, classes):
        ax.hist(df.proba[df.t2_class == cls], bins=np.linspace(0, 1, 21), color="darkorange")
        ax.set(title=f"{cls} ({per_class[cls]})", xlabel=f"p({cls}) of its alerts", ylabel="alerts")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    proba_img = _png(fig, png("probabilities"))

    sections, bands = [], set()
    oid, aid = survey.object_id, survey.alert_id
    for cls in classes:
        best = df[df.t2_class == cls].sort_values("proba", ascending=False).drop_duplicates(oid).head(top_n)
        if best.empty:
            sections.append(f"<h3>{html.escape(cls)}</h3><p>no alert classified as {html.escape(cls)}</p>")
            continue
        fig = Figure(figsize=(3.6 * len(best) + (1.2 if survey is RUBIN else 0), 3),
                     layout="constrained" if survey is RUBIN else None)
        for ax, (_, alert) in zip(np.atleast_1d(fig.subplots(1, len(best))), best.iterrows()):
            bands.update(survey.plot(ax, alert))
            ax.set_title(f"{alert[oid]}  p={alert.proba:.2f}", fontsize=9)
        if survey is RUBIN:  # one legend for the figure: every band any of its light curves shows
            entries = {label: handle for ax in fig.axes for handle, label in zip(*ax.get_legend_handles_labels())}
            fig.legend(entries.values(), entries.keys(), fontsize=7, loc="outside right upper")
        else:
            fig.axes[0].legend(fontsize=7)
        table = "".join(
            f"<tr><td>{html.escape(str(a[oid]))}</td><td>{a[aid]}</td><td>{a.proba:.3f}</td></tr>" for _, a in best.iterrows()
        )
        sections.append(
            f"<h3>{html.escape(cls)}</h3><table><tr><th>{oid}</th><th>{aid}</th><th>p({html.escape(cls)})</th></tr>"
            f"{table}</table>{_png(fig, png('top_' + re.sub(r'[^a-z0-9]+', '_', cls.lower())))}"
        )

    run = read_summary(output_dir)
    page = PAGE.substitute(
        name=html.escape(output_dir.resolve().name), output=html.escape(str(output_dir.resolve())), total=len(df),
        classified=int(df.t2_class.notna().sum()), throughput=throughput_text(run), status_rows=rows(status, "status", survey.status_meaning),
        class_rows=rows(per_class, "class"), counts_img=counts_img, proba_img=proba_img, candidates="\n".join(sections), top_n=top_n,
        light_curve=html.escape(survey.light_curve),
    )
    html_path.write_text(page, encoding="utf-8")
    result = {"html": str(html_path), "alerts": len(df), "t2_status": status, "t2_class": per_class, "run": run}
    if survey is RUBIN:  # the bands the top candidates' light curves show
        result.update(survey=survey.name, bands_plotted=sorted(bands, key=list(RUBIN_BANDS).index))
    return result
