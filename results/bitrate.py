"""Every system on one bitrate axis.

A run's ``systems.json`` says what each system is: a trained loss or the PCA baseline gives its
latents per second (one code per reconstruction hop), which is a *nominal* bitrate at a number of
bits per latent (``latent_bits``, default 8: the code is not quantised or entropy-coded, so this
is what it would cost stored at that precision); a codec gives the bitrate measured from its
encoded files; a scored folder the bitrate its user gave, if any.
"""

from __future__ import annotations

import pandas as pd

DEFAULT_LATENT_BITS = 8
BITRATE_COLUMNS = ["system", "kind", "kbps", "basis"]


def system_bitrates(systems: dict[str, dict], names: list[str], latent_bits: int = DEFAULT_LATENT_BITS) -> pd.DataFrame:
    """One row per system of ``names``: its kind, kbit/s (NaN when unknown) and how the figure was obtained.

    ``basis``: ``nominal`` (latents/s × ``latent_bits``), ``measured`` (a codec's encoded files),
    ``given`` (by the user for a scored folder) or ``unknown``.
    """
    rows = []
    for name in names:
        entry = systems.get(name) or {}
        kind = entry.get("kind") or "unknown"
        if entry.get("latents_per_s") is not None:
            kbps, basis = float(entry["latents_per_s"]) * latent_bits / 1000, "nominal"
        elif entry.get("bitrate_kbps") is not None:
            kbps, basis = float(entry["bitrate_kbps"]), entry.get("bitrate") or "measured"
        else:
            kbps, basis = float("nan"), "unknown"
        rows.append({"system": name, "kind": kind, "kbps": kbps, "basis": basis,
                     "latents_per_s": entry.get("latents_per_s")})
    frame = pd.DataFrame(rows, columns=[*BITRATE_COLUMNS, "latents_per_s"])
    return frame.sort_values("kbps", na_position="last", kind="stable").reset_index(drop=True)
