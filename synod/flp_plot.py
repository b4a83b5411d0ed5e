"""The picture of the essay's FLP part: undecided runs decay geometrically, round after round.

The synod on a random network (:func:`synod.flp.synod_rounds`), the
fraction of runs still undecided after ballot round k, with and without
back-off, each with its fitted law ``c * r**k`` (:class:`synod.flp.GeometricFit`).
Points that took part in the fit are filled, the others hollow; a round with
no undecided run has no point (the y axis is logarithmic).  The curves are not
backends, so greys and markers tell them apart (backend colours are for
backends only).  A separate module, so that :mod:`synod.flp` needs no
plotting library.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from smr.plots import save_figure  # noqa: E402

from .flp import FlpReport, RoundsCurve  # noqa: E402

#: Curves of part 2 are not backends: greys and markers tell them apart.
_CURVE_STYLE = {True: ("#000000", "o"), False: ("#7f7f7f", "s")}


@attrs.frozen
class FlpFigure:
    """The drawn FLP figure and its one panel."""

    figure: Figure
    axes: Axes


def _decay(ax: Axes, curve: RoundsCurve) -> None:
    colour, marker = _CURVE_STYLE[curve.backoff]
    fitted = set(curve.fit.rounds) if curve.fit is not None else set()
    points = [(k, f) for k, f in enumerate(curve.fractions, start=1) if f > 0]
    inside = [(k, f) for k, f in points if k in fitted]
    outside = [(k, f) for k, f in points if k not in fitted]
    ax.plot([k for k, _ in inside], [f for _, f in inside], marker, color=colour, ms=5, ls="none",
            label=f"{curve.label}: undecided after round k ({curve.seeds} seeds)", gid=f"observed:{curve.label}")
    if outside:
        ax.plot([k for k, _ in outside], [f for _, f in outside], marker, mfc="none", mec=colour, ms=5, ls="none",
                gid=f"observed-unfitted:{curve.label}")
    if curve.fit is not None:
        horizon = max(len(curve.fractions), max(fitted, default=1))
        ks = list(range(1, horizon + 1))
        fit = curve.fit
        ax.plot(ks, [fit.at(k) for k in ks], color=colour, ls="--", lw=1.2, gid=f"fit:{curve.label}",
                label=f"{curve.label}: fitted {fit.c:.2f} x {fit.r:.3f}^k (rounds {fit.rounds[0]}..{fit.rounds[-1]})")


def draw_flp(report: FlpReport) -> FlpFigure:
    """Draw the per-round decay of undecided runs with the fitted geometric laws."""
    fig, ax = plt.subplots(figsize=(8.5, 5.6), layout="constrained")
    for curve in report.curves:
        _decay(ax, curve)
    first = report.curves[0].settings if report.curves else {}
    ax.set_title(f"synod on a random network: {first.get('nodes', '?')} nodes, {first.get('proposers', '?')} "
                 f"proposers, one-way delay {first.get('latency_ms', ['?', '?'])[0]:g}-"
                 f"{first.get('latency_ms', ['?', '?'])[1]:g} ms", fontsize=10)
    ax.set_yscale("log")
    ax.set_xlabel("ballot round k")
    ax.set_ylabel("fraction of runs still undecided after round k")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False, ncols=2)
    fig.suptitle("FLP in practice: each extra ballot round is geometrically less likely\n"
                 "(filled: rounds in the least-squares fit; hollow: too few undecided runs to fit; "
                 "no point: none undecided)", fontsize=10)
    return FlpFigure(fig, ax)


def plot_flp(report: FlpReport, path_stem: Path) -> list[Path]:
    """Draw the FLP figure; write ``<stem>.png`` and ``<stem>.svg``; return their paths."""
    return save_figure(draw_flp(report).figure, path_stem)
