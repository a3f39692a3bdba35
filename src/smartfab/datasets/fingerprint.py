"""Content fingerprints: what a dataset *is*, independent of the bytes one machine wrote.

Two builds of the same generator with the same parameters hold the same data, yet their files
differ: netCDF records the versions of the libraries that wrote it, chunking and compression may
change, and floating-point results can differ in the last bit between CPUs (vectorised ``exp``
and ``log`` are not correctly rounded, and each CPU family takes its own code path). A card
therefore pins a fingerprint of the content, and a build is accepted when its content matches:

- per variable (coordinates included): dtype, dims, shape and units;
- integers, booleans, strings, dates and durations (fault types, labels, machine states,
  counts): a sha256 of the exact values;
- floating-point values: a sha256 of the values rounded to a *step*, a power of two well above
  the differences machines may produce (:func:`float_tolerances`): for float64 about 7e-9 of
  the variable's *scale* (the power of two at or above its largest magnitude), for float32,
  whose values differ by a unit in the last place when they do, about 5e-4 of it. Values that
  lie so close to a rounding boundary when the fingerprint is pinned that a machine difference
  could round them the other way are kept out of that hash and listed with their index and
  value instead (about 2 in 10,000). Min, max, mean, standard deviation and a fixed sample of
  values are compared within a *tolerance*: 1e-9 of the scale for float64, about 1e-6 of it
  for float32. Together they catch any value changed by more than the step and small changes
  spread over all values;
- attributes: a sha256 of the text and integer ones, and numbers compared within ``RTOL``.
  Attributes that describe the container or the writing software, not the data
  (``_NCProperties``, ``product_version``, ...), are not part of the identity, nor are chunking,
  compression or encoding.

A fingerprint is checked *like* the pinned one: the candidate is computed with the reference's
scales and rounding exceptions, then compared field by field, and every difference names the
variable, the statistic and both values. :meth:`Fingerprint.digest` names the content in run
provenance.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import xarray as xr

FORMAT: Final = "smartfab-fingerprint/1"
#: how far (relative to the scale) float64 results may differ between machines: vectorised
#: exp/log/sin differ by an ulp or two, and recursions (filters, cumulative sums) carry that
#: along; 2**-40 is some 8000 ulps of the scale
FLOAT64_NOISE: Final = 2.0**-40
#: the rounding step is this many times the noise: values within the noise of a boundary are
#: kept apart, a fraction of 2 / STEP_OVER_NOISE = 2.4e-4 of them
STEP_OVER_NOISE: Final = 2.0**13
#: statistics and sampled values agree within RTOL of the scale (or 16 times the noise of
#: narrower floats, whose values differ by whole ulps)
RTOL: Final = 1e-9
#: values compared one by one at fixed positions (evenly spread over the flattened array)
SAMPLE: Final = 8
#: attributes that describe the file or the software that wrote it, not the data
CONTAINER_ATTRS: Final = frozenset(
    {"_NCProperties", "product_version", "smartfab_sha256", "smartfab_fingerprint"}
)
#: codes standing in for values that are not finite, or kept apart, in the rounded values
_NAN, _POSINF, _NEGINF, _APART = (np.iinfo(np.int64).min + k for k in range(4))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatValues(_Model):
    """The floating-point values of one variable, within tolerances (see the module doc)."""

    scale: float = Field(gt=0, description="power of two at or above the largest magnitude")
    step: float = Field(gt=0, description="values are rounded to multiples of it")
    tolerance: float = Field(gt=0, description="for statistics and sampled values")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the rounded values")
    apart_index: list[int] = Field(
        default_factory=list, description="flat indices of the values kept out of the hash"
    )
    apart_value: list[float] = Field(default_factory=list, description="and their values")
    nonfinite: int = Field(0, ge=0, description="NaN and infinite values (in the hash too)")
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    sample: list[float] = Field(default_factory=list, description="values at sample_positions")


class VariableFingerprint(_Model):
    """One variable: its shape and kind, and its values exactly or within tolerances."""

    dtype: str
    dims: list[str]
    shape: list[int]
    units: str | None = None
    sha256: str | None = Field(None, description="exact values (not floating point)")
    floats: FloatValues | None = None


class AttrsFingerprint(_Model):
    """Global and variable attributes (``name`` or ``variable.name``)."""

    sha256: str = Field(description="text, integer and boolean attributes, exactly")
    numbers: dict[str, float | list[float]] = Field(default_factory=dict)


class Fingerprint(_Model):
    """The content fingerprint of a dataset (see the module doc)."""

    format: Literal["smartfab-fingerprint/1"] = FORMAT
    attrs: AttrsFingerprint
    variables: dict[str, VariableFingerprint]

    def digest(self) -> str:
        """sha256 naming the content: structure, exact hashes and rounded-value hashes.

        The tolerated parts (statistics, sampled values, numbers) are left out, so two
        fingerprints of the same content computed on different machines share the digest.
        """
        identity = {
            "format": self.format,
            "attrs": {
                "sha256": self.attrs.sha256,
                "numbers": {k: _rounded_text(v) for k, v in sorted(self.attrs.numbers.items())},
            },
            "variables": {
                name: {
                    "dtype": v.dtype,
                    "dims": v.dims,
                    "shape": v.shape,
                    "units": v.units,
                    "sha256": v.sha256,
                    "floats": None
                    if v.floats is None
                    else {"step": v.floats.step, "sha256": v.floats.sha256},
                }
                for name, v in sorted(self.variables.items())
            },
        }
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Difference:
    """One way in which content differs from its fingerprint."""

    variable: str  # a variable name, "(attributes)" or "(variables)"
    statistic: str  # e.g. "mean", "dtype", "value at index 1234", "rounded values (sha256)"
    expected: Any
    actual: Any
    tolerance: str = ""

    def render(self) -> str:
        within = f" (tolerance {self.tolerance})" if self.tolerance else ""
        values = f"expected {self.expected}, got {self.actual}"
        return f"{self.variable}: {self.statistic}: {values}{within}"


# -- computing -------------------------------------------------------------------------------------


def fingerprint_of(ds: xr.Dataset, like: Fingerprint | None = None) -> Fingerprint:
    """The fingerprint of ``ds`` (its coordinates and data variables, decoded).

    Parameters
    ----------
    ds:
        The dataset, as ``xarray.open_dataset`` gives it (values are loaded variable by variable).
    like:
        A pinned fingerprint to check against: floats are then rounded with its scales and with
        its values kept apart, so that :func:`differences` compares like with like.

    See Also
    --------
    differences
    """
    variables: dict[str, VariableFingerprint] = {}
    for name, var in ds.variables.items():
        reference = like.variables.get(str(name)) if like is not None else None
        variables[str(name)] = _variable(var, reference)
    return Fingerprint(attrs=_attrs(ds), variables=variables)


def _variable(var: Any, reference: VariableFingerprint | None) -> VariableFingerprint:
    values = np.asarray(var.values)
    units = var.attrs.get("units", var.encoding.get("units"))
    common = {
        "dtype": values.dtype.str.lstrip("<>|="),
        "dims": [str(d) for d in var.dims],
        "shape": list(values.shape),
        "units": None if units is None else str(units),
    }
    if values.dtype.kind in "fc":
        ref = reference.floats if reference is not None else None
        return VariableFingerprint(**common, floats=_floats(values, ref))
    return VariableFingerprint(**common, sha256=_exact_sha256(values))


def _exact_sha256(values: NDArray[Any]) -> str:
    """sha256 of exact values: little-endian numbers, or length-prefixed UTF-8 text."""
    digest = hashlib.sha256()
    kind = values.dtype.kind
    if kind in "biuMm":
        if kind in "Mm":
            values = values.view(np.int64)
        little = values.dtype.newbyteorder("<") if values.dtype.byteorder != "|" else values.dtype
        digest.update(np.ascontiguousarray(values, dtype=little).tobytes())
        return digest.hexdigest()
    for item in values.ravel().tolist():
        text = item.decode() if isinstance(item, bytes) else str(item)
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


#: values processed at a time: bounds the temporaries of large variables (32 MiB of float64)
BLOCK: Final = 1 << 22
#: rounded values beyond this magnitude (data far above the pinned scale) are clipped
_CLIP: Final = float(1 << 62)


def _floats(values: NDArray[Any], reference: FloatValues | None) -> FloatValues:
    if values.dtype.kind == "c":
        values = values.view(values.real.dtype)  # real and imaginary parts, interleaved
    flat = values.reshape(-1)
    if reference is not None:
        scale, step, tolerance = reference.scale, reference.step, reference.tolerance
        pinned_apart = np.array(reference.apart_index, dtype=np.int64)
    else:
        scale = _scale_above(_largest_magnitude(flat))
        step, tolerance = float_tolerances(values.dtype, scale)
    digest = hashlib.sha256()
    apart: list[int] = []
    moments = _Moments()
    for start in range(0, flat.size, BLOCK):
        x = np.asarray(flat[start : start + BLOCK], dtype=np.float64)  # float32 widens exactly
        finite = np.isfinite(x)
        moments.add(x[finite])
        scaled = np.where(finite, x, 0.0) / step  # exact: step is a power of two
        codes = np.clip(np.floor(scaled + 0.5), -_CLIP, _CLIP).astype(np.int64)
        codes[np.isnan(x)] = _NAN
        codes[x == np.inf] = _POSINF
        codes[x == -np.inf] = _NEGINF
        if reference is not None:
            inside = pinned_apart[(pinned_apart >= start) & (pinned_apart < start + x.size)]
            local = inside - start
        else:
            distance = np.abs(scaled - np.floor(scaled) - 0.5)  # in steps, from the boundary
            local = np.flatnonzero(finite & (distance <= 1.0 / STEP_OVER_NOISE))
        codes[local] = _APART
        apart += (local + start).tolist()
        digest.update(codes.astype("<i8").tobytes())
    return FloatValues(
        scale=scale,
        step=step,
        tolerance=tolerance,
        sha256=digest.hexdigest(),
        apart_index=apart,
        apart_value=[float(flat[i]) for i in apart],
        nonfinite=flat.size - moments.count,
        min=moments.low,
        max=moments.high,
        mean=moments.mean if moments.count else None,
        std=math.sqrt(moments.m2 / moments.count) if moments.count else None,
        sample=[float(flat[i]) for i in sample_positions(flat.size)],
    )


def _largest_magnitude(flat: NDArray[Any]) -> float:
    largest = 0.0
    for start in range(0, flat.size, BLOCK):
        block = np.abs(np.asarray(flat[start : start + BLOCK], dtype=np.float64))
        block = block[np.isfinite(block)]
        if block.size:
            largest = max(largest, float(block.max()))
    return largest


class _Moments:
    """Count, min, max, mean and sum of squared deviations over blocks (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low: float | None = None
        self.high: float | None = None

    def add(self, x: NDArray[np.float64]) -> None:
        if not x.size:
            return
        n, mean = x.size, float(np.mean(x))
        m2 = float(np.sum((x - mean) ** 2))
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        low, high = float(x.min()), float(x.max())
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)


def float_tolerances(dtype: np.dtype[Any], scale: float) -> tuple[float, float]:
    """(rounding step, tolerance) for values of ``dtype`` whose scale is ``scale``.

    float64 values may differ by :data:`FLOAT64_NOISE` of the scale; narrower floats, computed
    wider and then rounded, by an ulp (when a wider result lay at a rounding boundary). The
    step is ``STEP_OVER_NOISE`` times the noise (at most a sixteenth of the scale), the
    tolerance 16 times the noise or ``RTOL`` of the scale, whichever is larger.

    Examples
    --------
    >>> float_tolerances(np.dtype("float64"), 1.0)
    (7.450580596923828e-09, 1e-09)
    >>> float_tolerances(np.dtype("float32"), 1.0)
    (0.00048828125, 9.5367431640625e-07)
    """
    # narrower floats: an ulp of the values just below the scale
    noise = FLOAT64_NOISE if dtype.itemsize >= 8 else float(np.finfo(dtype).eps) / 2
    step = min(noise * STEP_OVER_NOISE, 2.0**-4) * scale
    return step, max(RTOL, 16 * noise) * scale


def _scale_above(largest: float) -> float:
    """The smallest power of two at or above ``largest`` (1.0 for all zeros)."""
    if largest == 0.0:
        return 1.0
    mantissa, exponent = math.frexp(largest)  # largest = mantissa * 2**exponent, 0.5 <= m < 1
    return math.ldexp(1.0, exponent - 1) if mantissa == 0.5 else math.ldexp(1.0, exponent)


def sample_positions(size: int) -> list[int]:
    """The flat indices of the sampled values of an array of ``size`` values."""
    if size == 0:
        return []
    return sorted({round(i * (size - 1) / max(SAMPLE - 1, 1)) for i in range(SAMPLE)})


def _attrs(ds: xr.Dataset) -> AttrsFingerprint:
    text: dict[str, Any] = {}
    numbers: dict[str, float | list[float]] = {}
    sources = [("", ds.attrs)] + [(f"{name}.", var.attrs) for name, var in ds.variables.items()]
    for prefix, attrs in sources:
        for key, value in attrs.items():
            if key in CONTAINER_ATTRS or str(key).startswith("_"):
                continue
            name = f"{prefix}{key}"
            array = np.asarray(value)
            if array.dtype.kind in "fc":
                floats = array.astype(np.float64).ravel().tolist()
                numbers[name] = floats[0] if array.ndim == 0 else floats
            else:
                text[name] = array.tolist() if array.dtype.kind in "biu" else str(value)
    document = json.dumps(text, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return AttrsFingerprint(
        sha256=hashlib.sha256(document.encode()).hexdigest(), numbers=dict(sorted(numbers.items()))
    )


def _rounded_text(value: float | list[float]) -> str:
    """Numbers at 9 significant digits, for the digest only (not for comparing)."""
    values = value if isinstance(value, list) else [value]
    return ",".join(f"{v:.9g}" for v in values)


# -- comparing -------------------------------------------------------------------------------------


def differences(pinned: Fingerprint, actual: Fingerprint) -> list[Difference]:
    """How ``actual`` (computed ``like=pinned``) differs from ``pinned``; empty when it matches."""
    found: list[Difference] = []
    missing = sorted(set(pinned.variables) - set(actual.variables))
    extra = sorted(set(actual.variables) - set(pinned.variables))
    if missing or extra:
        found.append(
            Difference("(variables)", "names", sorted(pinned.variables), sorted(actual.variables))
        )
    for name in sorted(set(pinned.variables) & set(actual.variables)):
        found += _variable_differences(name, pinned.variables[name], actual.variables[name])
    if pinned.attrs.sha256 != actual.attrs.sha256:
        found.append(
            Difference(
                "(attributes)", "text attributes (sha256)", pinned.attrs.sha256, actual.attrs.sha256
            )
        )
    for key in sorted(set(pinned.attrs.numbers) | set(actual.attrs.numbers)):
        want, got = pinned.attrs.numbers.get(key), actual.attrs.numbers.get(key)
        if not _numbers_close(want, got):
            found.append(Difference("(attributes)", key, want, got, f"{RTOL:g} relative"))
    return found


def _variable_differences(
    name: str, pinned: VariableFingerprint, actual: VariableFingerprint
) -> list[Difference]:
    found = [
        Difference(name, field, getattr(pinned, field), getattr(actual, field))
        for field in ("dtype", "dims", "shape", "units")
        if getattr(pinned, field) != getattr(actual, field)
    ]
    if found:
        return found  # values of another shape or kind: comparing them says nothing more
    if pinned.floats is None or actual.floats is None:
        if pinned.sha256 != actual.sha256:
            found.append(Difference(name, "exact values (sha256)", pinned.sha256, actual.sha256))
        return found
    want, got = pinned.floats, actual.floats
    tolerance = want.tolerance
    within = f"{tolerance:.3g}"
    if want.nonfinite != got.nonfinite:
        found.append(Difference(name, "NaN and infinite values", want.nonfinite, got.nonfinite))
    for statistic in ("min", "max", "mean", "std"):
        a, b = getattr(want, statistic), getattr(got, statistic)
        if not _close(a, b, tolerance):
            found.append(Difference(name, statistic, a, b, within))
    positions = sample_positions(math.prod(pinned.shape) * (2 if pinned.dtype[0] == "c" else 1))
    for index, a, b in zip(positions, want.sample, got.sample, strict=False):
        if not _close(a, b, tolerance):
            found.append(Difference(name, f"value at index {index}", a, b, within))
    step = want.step
    got_apart = dict(zip(got.apart_index, got.apart_value, strict=True))
    for index, a in zip(want.apart_index, want.apart_value, strict=True):
        b = got_apart.get(index)
        if b is None or not _close(a, b, step):
            found.append(Difference(name, f"value at index {index}", a, b, f"{step:.3g}"))
    if want.sha256 != got.sha256:
        found.append(
            Difference(
                name,
                f"values rounded to {step:.3g} (sha256)",
                want.sha256,
                got.sha256,
                "one or more values differ by more than the rounding step",
            )
        )
    return found


def _close(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tolerance


def _numbers_close(a: float | list[float] | None, b: float | list[float] | None) -> bool:
    if a is None or b is None:
        return a is b
    left = a if isinstance(a, list) else [a]
    right = b if isinstance(b, list) else [b]
    if len(left) != len(right) or isinstance(a, list) != isinstance(b, list):
        return False
    return all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=RTOL, abs_tol=0.0)
        for x, y in zip(left, right, strict=True)
    )
