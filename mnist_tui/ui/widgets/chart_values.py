"""What a chart computes from its points before plotext sees them: smoothing, averaging
into bins, bounds for untrusted values, and the ticks of a log axis."""

from __future__ import annotations

import bisect
import math
import operator

# Plotext's arithmetic overflows near the float limit (the span of ±1e308 is infinite), so
# values are clipped to ±LIMIT; a loss past it has diverged whatever its size.
LIMIT = 1e100
# Plotext divides by an axis's span: one under about 1e-300 overflows, so none is narrower.
NARROWEST = 1e-200


def smooth(ys: list[float], weight: float) -> list[float]:
    """Exponential moving average, debiased at the start as TensorBoard does (weight 0: as is)."""
    if weight <= 0:
        return list(ys)
    out, last, norm = [], 0.0, 0.0
    for y in ys:
        last = last * weight + (1 - weight) * y
        norm = norm * weight + (1 - weight)
        out.append(last / norm)
    return out


def mean(values: list[float]) -> float:
    """Their mean, exactly rounded; values near the float limit are scaled first, not summed
    into an overflow."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # the sum passes the float limit though the mean does not
        return math.fsum(v / len(values) for v in values)


def bin_means(xs: list[float], ys: list[float], bins: int) -> tuple[list[float], list[float]]:
    """At most `bins` points: the mean of the points falling in each equal slice of x (xs
    ascending, as a curve's are; the slices are found by bisection, the sums in C)."""
    if len(xs) <= bins or bins < 1:
        return list(xs), list(ys)
    lo, hi = xs[0], xs[-1]
    edges = [bisect.bisect_right(xs, lo + (hi - lo) * k / bins) for k in range(1, bins)] + [len(xs)]
    out_x, out_y, start = [], [], 0
    for end in edges:
        if end > start:
            out_x.append(mean(xs[start:end]))
            out_y.append(mean(ys[start:end]))
            start = end
    return out_x, out_y


def drawable(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The xs and ys of the points a chart can place, x ascending: a finite x (clipped to
    ±LIMIT) and a y that is a number (NaN dropped; infinities kept, for `clipped` to bound).
    A damaged file's points out of order are sorted: a point outside the view's x range
    must never reach plotext, which would draw the line to it dot by dot. (The checks run
    in C, map over whole lists: a per-batch curve has tens of thousands of points.)"""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if any(map(math.isnan, xs)) or any(map(math.isnan, ys)) or (xs and (min(xs) < -LIMIT or max(xs) > LIMIT)):
        kept = [(min(max(x, -LIMIT), LIMIT), y) for x, y in points if math.isfinite(x) and y == y]  # NaN equals nothing
        xs, ys = [p[0] for p in kept], [p[1] for p in kept]
    if not all(map(operator.le, xs, xs[1:])):
        order = sorted(range(len(xs)), key=xs.__getitem__)
        xs, ys = [xs[i] for i in order], [ys[i] for i in order]
    return xs, ys


def clipped(ys: list[float]) -> list[float]:
    """Values (no NaN among them) bounded to ±LIMIT, infinities included."""
    if not ys or (min(ys) >= -LIMIT and max(ys) <= LIMIT):
        return ys
    return [min(max(y, -LIMIT), LIMIT) for y in ys]


def spread(lo: float, hi: float) -> tuple[float, float]:
    """An axis range plotext can divide by: lo..hi, or around them where they (nearly) meet,
    as plotext itself widens a constant (half of it either side; -1..1 around 0)."""
    if hi - lo >= NARROWEST:
        return lo, hi
    centre = (lo + hi) / 2
    half = max(abs(centre) / 2, NARROWEST) if centre else 1.0
    return centre - half, centre + half


def short(value: float, digits: int = 3) -> str:
    """A tick's label: 0.001, 100, 2e-5, 1e6 (no '+' and no leading zeros in the exponent)."""
    mantissa, _, power = f"{value:.{digits}g}".partition("e")
    return f"{mantissa}e{int(power)}" if power else mantissa


def log_ticks(lo: float, hi: float, most: int = 5) -> tuple[list[float], list[str]]:
    """Ticks on a log10 axis from lo to hi, at most `most`: their positions (log10 of the
    value) and labels (the value). Powers of ten, or where they are fewer than three, 1-2-5
    or 1..9 steps; within one step, four evenly spaced values."""
    first, last = max(math.floor(lo), -323), min(math.ceil(hi), 308)  # what a float can hold
    values: list[float] = []
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        inside = [v for k in range(first, last + 1) for m in mantissas if (v := m * 10.0**k) > 0 and lo <= math.log10(v) <= hi]
        if len(inside) > most:  # finer steps would be more still
            values = values if len(values) >= 2 else inside[:: math.ceil(len(inside) / most)]
            break
        values = inside
        if len(values) >= 3:
            break
    digits = 3
    if len(values) < 2:
        a, b = 10.0**lo, 10.0**hi
        values = list(dict.fromkeys(v for i in range(4) if (v := a + (b - a) * i / 3) > 0))  # subnormals coincide
        # As many digits as tell them apart (a double has 17).
        digits = next((d for d in range(3, 18) if len({short(v, d) for v in values}) == len(values)), 3)
    values = [v for v in values if lo <= math.log10(v) <= hi]  # a subnormal's log lies off its mark
    return [math.log10(v) for v in values], [short(v, digits) for v in values]
