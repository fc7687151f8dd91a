"""Training data: a deterministic synthetic history, or a CSV that is checked before use."""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bikeshare.errors import BikeshareError
from bikeshare.model.features import (
    FEATURE_DTYPES,
    FEATURE_NAMES,
    FEATURES,
    TARGET,
    Feature,
    text_problem,
)

# Station ids are strings on purpose: operators write them as labels ("72"), never as numbers.
STATION_IDS: tuple[str, ...] = tuple(str(n) for n in range(60, 85))
DAYS = 140
HOURS = 24


class DataError(BikeshareError, ValueError):
    """A training file that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class StationHistory:
    """One station's hours in the synthetic history: what a synthesiser makes its column from."""

    station: str
    hour: np.ndarray
    dow: np.ndarray
    temperature: np.ndarray  # the true temperature demand reacts to (no sensor noise)


Synthesiser = Callable[[StationHistory, np.random.Generator], np.ndarray]

# The generators a Feature names in `synthetic`. Only these carry signal: demand is computed from
# the station, hour, weekday and temperature. A feature whose values should move demand in tests
# needs a generator here and its effect in `synthetic_rides`.
SYNTHESISERS: dict[str, Synthesiser] = {
    "station": lambda h, rng: np.full(h.hour.shape, h.station, dtype=object),
    "hour": lambda h, rng: h.hour,
    "dow": lambda h, rng: h.dow,
    # A thermometer reads to 0.1 C with a little noise around the temperature riders feel.
    "temperature": lambda h, rng: np.round(
        h.temperature + rng.normal(0, 0.3, size=h.temperature.shape), 1
    ),
}


def synthetic_rides(seed: int = 0) -> pd.DataFrame:
    """Hourly rides per station over 20 weeks, with the shape real bikeshare demand has.

    Weekdays have morning and evening commute peaks, weekends one broad midday peak; mild weather
    brings riders out and cold or heat keeps them home; each station has its own level; counts are
    Poisson around an over-dispersed mean. The same seed always gives the same frame. It has one
    column per feature in FEATURES (made as each Feature's `synthetic` says) and `rides`.
    """
    rng = np.random.default_rng(seed)
    station_level = rng.lognormal(mean=0.0, sigma=0.5, size=len(STATION_IDS))
    day = np.repeat(np.arange(DAYS), HOURS)
    hour = np.tile(np.arange(HOURS), DAYS)
    dow = day % 7
    temp = _temperature(day, hour, rng)
    # Features without a generator draw from their own stream: adding one changes no other column.
    own_streams = {
        f.name: np.random.default_rng([seed, zlib.crc32(f.name.encode())])
        for f in FEATURES
        if f.synthetic is None
    }

    frames = []
    for station, level in zip(STATION_IDS, station_level, strict=True):
        mean = 6.0 * level * _hourly_profile(hour, dow) * _weather_factor(temp)
        noisy_mean = mean * rng.gamma(shape=8.0, scale=1 / 8.0, size=mean.shape)
        history = StationHistory(station, hour, dow, temp)
        columns = {f.name: _synthesise(f, history, own_streams.get(f.name, rng)) for f in FEATURES}
        frames.append(pd.DataFrame({**columns, TARGET: rng.poisson(noisy_mean)}))
    return _with_feature_dtypes(pd.concat(frames, ignore_index=True))


def _synthesise(feature: Feature, history: StationHistory, rng: np.random.Generator) -> np.ndarray:
    if feature.synthetic is None:
        return _from_kind_and_range(feature, len(history.hour), rng)
    synthesiser = SYNTHESISERS.get(feature.synthetic)
    if synthesiser is None:
        raise BikeshareError(
            f"feature {feature.name}: synthetic={feature.synthetic!r} names no generator in "
            f"bikeshare.model.data.SYNTHESISERS ({', '.join(sorted(SYNTHESISERS))}); "
            "leave it out to draw values from the feature's kind and range"
        )
    return synthesiser(history, rng)


def _from_kind_and_range(feature: Feature, size: int, rng: np.random.Generator) -> np.ndarray:
    """Values valid for the feature, spread over its range: a column that trains, without signal.

    An open range is given a width of 100 from its one bound (or 0-100): any valid spread will do,
    since these values do not affect demand."""
    if feature.kind == "string":
        return np.array([str(n) for n in rng.integers(0, 10, size=size)], dtype=object)
    low, high = feature.minimum, feature.maximum
    if low is None:
        low = 0.0 if high is None else high - 100.0
    if high is None:
        high = low + 100.0
    if feature.kind == "integer":
        return rng.integers(int(np.ceil(low)), int(np.floor(high)) + 1, size=size)
    # Rounded to a reading's precision, then clipped: rounding must not step outside the range.
    return np.clip(np.round(rng.uniform(low, high, size=size), 1), low, high)


def _temperature(day: np.ndarray, hour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spring into summer: a seasonal rise, a daily cycle peaking mid-afternoon, weather noise."""
    seasonal = 4.0 + 22.0 * day / DAYS
    daily = 5.0 * np.cos(2 * np.pi * (hour - 15) / HOURS)
    weather = np.repeat(rng.normal(0.0, 3.5, size=DAYS), HOURS)
    return seasonal + daily + weather


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def _hourly_profile(hour: np.ndarray, dow: np.ndarray) -> np.ndarray:
    weekday = 0.15 + 3.0 * _bump(hour, 8, 1.0) + 2.5 * _bump(hour, 17.5, 1.3)
    weekday += 0.8 * _bump(hour, 12.5, 1.5)
    weekend = 0.15 + 2.2 * _bump(hour, 13.5, 2.8)
    return np.where(dow >= 5, weekend, weekday)


def _weather_factor(temp: np.ndarray) -> np.ndarray:
    """1.0 around 21 C, falling towards 0.15 in the cold and the heat."""
    return 0.15 + 0.85 * np.exp(-(((temp - 21.0) / 11.0) ** 2))


def _with_feature_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes of the model signature (object strings, int64 integers, float64 numbers)."""
    return frame.astype(FEATURE_DTYPES).astype({TARGET: "float64"})


def read_rides_csv(path: Path) -> pd.DataFrame:
    """Read and check a training CSV with a column per feature in FEATURES and `rides`.

    Every row is checked before anything is trained, and the first problem is reported with its
    line number, so a bad export fails in a second instead of producing a bad model.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else _header_only(path)
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from error
    missing = [c for c in (*FEATURE_NAMES, TARGET) if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {list(header)}")
    if not rows:
        raise DataError(f"{path}: no data rows")
    for line, row in enumerate(rows, start=2):
        problem = _row_problem(row)
        if problem:
            raise DataError(f"{path}: line {line}: {problem}")
    frame = pd.DataFrame(rows, columns=[*FEATURE_NAMES, TARGET])
    # Integer cells may be written "8.0" (checked above to be whole): through float, then int64.
    whole = {f.name: "float64" for f in FEATURES if f.kind == "integer"}
    return _with_feature_dtypes(frame.astype(whole))


def _header_only(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _row_problem(row: dict[str, str | None]) -> str | None:
    for feature in FEATURES:
        problem = text_problem(feature, row.get(feature.name) or "")
        if problem:
            return problem
    rides = row.get(TARGET) or ""
    try:
        value = float(rides)
    except ValueError:
        return f"{TARGET} must be a non-negative number, got {rides!r}"
    if not value >= 0 or value == float("inf"):
        return f"{TARGET} must be a non-negative number, got {rides!r}"
    return None
