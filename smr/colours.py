"""The one colour of each backend, the same in every figure and page.

Colours belong to backends only: a figure distinguishes metrics, seeds,
outcomes or faults by panels, markers, line styles or greys, never by these
colours.  The palette is Okabe and Ito's, which stays distinguishable for
readers with the common colour-vision deficiencies.  Pure data, no plotting
library, so the HTML report can use it too.
"""

from __future__ import annotations

import zlib

#: Backends that ship with the project, each with its fixed colour.
KNOWN: dict[str, str] = {
    "raft": "#0072B2",               # blue
    "multipaxos": "#D55E00",         # vermillion
    "raft-pv-cq": "#CC79A7",         # reddish purple
    "coordinator": "#009E73",        # bluish green
    "synod-paxos": "#E69F00",        # orange
    "synod-coordinator": "#56B4E9",  # sky blue
    "synod-majority": "#8C6D31",     # brown
    "synod-tiebreak": "#6A3D9A",     # purple
    "bench-echo": "#999933",         # olive
}
#: Colours for backends the project does not know (plugins), picked by a stable hash of the name.
_SPARE: tuple[str, ...] = ("#332288", "#117733", "#882255", "#44AA99", "#AA4499", "#DDCC77", "#661100",
                           "#6699CC")
#: Greys for what is not a backend (fault bands, markers of outcomes, fits), never used for backends.
FAULT_GREY = "#7f7f7f"
MARKER_BLACK = "#000000"


def backend_colour(name: str) -> str:
    """The hex colour of backend ``name``: fixed for known backends, stable across runs for any other."""
    if name in KNOWN:
        return KNOWN[name]
    return _SPARE[zlib.crc32(name.encode("utf-8")) % len(_SPARE)]
