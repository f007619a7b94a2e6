"""The 32 real Rubin alerts of docs/rubin.json: the scores Fink's Rubin stage stored in them, and whether the
modules rerun by ``scripts/rubin_compare.py`` give the same."""

from __future__ import annotations


def fink_stored(path) -> dict:
    """diaSourceId → the scores Fink's Rubin stage wrote into an alert file (its ``clf`` column), if any."""
    import fastavro

    with open(path, "rb") as stream:
        return {r["diaSourceId"]: {k: r["clf"][k] for k in ("snnSnVsOthers_score", "cats_class", "cats_score",
                                                              "earlySNIa_score")}
                for r in fastavro.reader(stream) if r.get("clf")}


CATS_CODES = (11, 12, 13, 21, 22)  # fink-broker's cats_class of each CATS output (rubin/science.py)


def stored_check(rows: list[dict]) -> dict:
    """How many of the alerts Fink scored get the same scores here (within 1e-4; CATS: same class and score)."""
    checked = [r for r in rows if r["fink_stored"]]
    same = {"SuperNNova SN_vs_other": 0, "CATS": 0, "Early SN Ia": 0}
    for r in checked:
        f = r["fink_stored"]
        if "SuperNNova SN_vs_other" in r and abs(r["SuperNNova SN_vs_other"] - f["snnSnVsOthers_score"]) < 1e-4:
            same["SuperNNova SN_vs_other"] += 1
        if "CATS" in r:
            p = r["CATS"]
            code = CATS_CODES[p.index(max(p))] if max(p) > 0 else -1
            same["CATS"] += int(code == f["cats_class"] and abs(max(p) - f["cats_score"]) < 1e-4)
        if "Early SN Ia" in r and abs(r["Early SN Ia"] - f["earlySNIa_score"]) < 1e-4:
            same["Early SN Ia"] += 1
    return {"alerts": len(checked), "same": same}
