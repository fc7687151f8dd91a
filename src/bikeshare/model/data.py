"""Training data: a deterministic synthetic history, or a CSV that is checked before use."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from bikeshare.errors import BikeshareError
from bikeshare.model.features import FEATURE_NAMES, FEATURES, TARGET, text_problem

# Station ids are strings on purpose: operators write them as labels ("72"), never as numbers.
STATION_IDS: tuple[str, ...] = tuple(str(n) for n in range(60, 85))
DAYS = 140
HOURS = 24


class DataError(BikeshareError, ValueError):
    """A training file that cannot be used; the message names the file, row and column."""


def synthetic_rides(seed: int = 0) -> pd.DataFrame:
    """Hourly rides per station over 20 weeks, with the shape real bikeshare demand has.

    Weekdays have morning and evening commute peaks, weekends one broad midday peak; mild weather
    brings riders out and cold or heat keeps them home; each station has its own level; counts are
    Poisson around an over-dispersed mean. The same seed always gives the same frame.
    """
    rng = np.random.default_rng(seed)
    station_level = rng.lognormal(mean=0.0, sigma=0.5, size=len(STATION_IDS))
    day = np.repeat(np.arange(DAYS), HOURS)
    hour = np.tile(np.arange(HOURS), DAYS)
    dow = day % 7
    temp = _temperature(day, hour, rng)

    frames = []
    for station, level in zip(STATION_IDS, station_level, strict=True):
        mean = 6.0 * level * _hourly_profile(hour, dow) * _weather_factor(temp)
        noisy_mean = mean * rng.gamma(shape=8.0, scale=1 / 8.0, size=mean.shape)
        frames.append(
            pd.DataFrame(
                {
                    "station_id": station,
                    "hour": hour,
                    "temp_c": np.round(temp + rng.normal(0, 0.3, size=temp.shape), 1),
                    "dow": dow,
                    TARGET: rng.poisson(noisy_mean),
                }
            )
        )
    return _with_feature_dtypes(pd.concat(frames, ignore_index=True))


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
    """The dtypes of the model signature: string station, int64 hour/dow, float64 temperature."""
    return frame.astype(
        {"station_id": object, "hour": "int64", "temp_c": "float64", "dow": "int64"}
    ).astype({TARGET: "float64"})


def read_rides_csv(path: Path) -> pd.DataFrame:
    """Read and check a training CSV with the four feature columns and `rides`.

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
    return _with_feature_dtypes(
        frame.astype({TARGET: "float64", "temp_c": "float64"}).assign(
            hour=lambda f: f["hour"].astype(float), dow=lambda f: f["dow"].astype(float)
        )
    )


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
