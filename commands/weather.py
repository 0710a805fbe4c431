"""Weather: ``!weather PLACE`` says the weather there now, from Open-Meteo (no key needed).

Two requests: the place's coordinates from the geocoding API, then the current
weather there from the forecast API. ``units: imperial`` gives °F and mph
(also per channel); the endpoints are settings too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.api import CommandError, Context, FetchError, Response, command

from ._common import clip, one_line

CURRENT = "temperature_2m,relative_humidity_2m,apparent_temperature,weather_code,wind_speed_10m"
MAX_PLACE = 100  # characters of a place's name

# WMO weather interpretation codes, as Open-Meteo documents them.
WMO = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "freezing fog",
    51: "light drizzle",
    53: "drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "light rain",
    63: "rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "light snow",
    73: "snow",
    75: "heavy snow",
    77: "snow grains",
    80: "light rain showers",
    81: "rain showers",
    82: "violent rain showers",
    85: "light snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with light hail",
    99: "thunderstorm with heavy hail",
}


# Two requests must fit in the default command_timeout (10 s) together.
EACH_TIMEOUT = 4.5


@dataclass(frozen=True)
class Settings:
    """modules: {weather: {...}} in config.yaml (or a channel's modules:)."""

    units: Literal["metric", "imperial"] = "metric"
    geocoding_endpoint: str = "https://geocoding-api.open-meteo.com/v1/search"
    forecast_endpoint: str = "https://api.open-meteo.com/v1/forecast"

    def __post_init__(self) -> None:
        for name in ("geocoding_endpoint", "forecast_endpoint"):
            if urlsplit(getattr(self, name)).scheme not in ("http", "https"):
                raise ValueError(f"{name} must be an http:// or https:// URL")


@command
def weather(ctx: Context, args: str) -> str:
    """weather PLACE -- the weather at PLACE now (a city, a town), e.g. !weather Lisbon"""
    name = one_line(args)
    if not name:
        raise CommandError("usage: weather PLACE, e.g. !weather Lisbon")
    if len(name) > MAX_PLACE:
        raise CommandError(f"weather: a place's name is at most {MAX_PLACE} characters")
    settings: Settings = ctx.settings
    found = get(
        ctx,
        settings.geocoding_endpoint,
        {"name": name, "count": "1", "language": "en", "format": "json"},
    ).get("results")
    if not found or not isinstance(found, list) or not isinstance(found[0], dict):
        raise CommandError(f"weather: no place named {clip(name, 60)}")
    place = found[0]
    if not all(isinstance(place.get(k), int | float) for k in ("latitude", "longitude")):
        raise CommandError("weather: the service sent an unexpected answer")
    params = {
        "latitude": str(place["latitude"]),
        "longitude": str(place["longitude"]),
        "current": CURRENT,
        "timezone": "auto",
    }
    if settings.units == "imperial":
        params |= {"temperature_unit": "fahrenheit", "wind_speed_unit": "mph"}
    forecast = get(ctx, settings.forecast_endpoint, params)
    return f"{where(place)}: {conditions(forecast, settings.units)}"


def get(ctx: Context, url: str, params: dict[str, str]) -> dict[str, Any]:
    """The JSON object at ``url``; a CommandError saying what went wrong if there is none."""
    try:
        response: Response = ctx.fetch(url, params=params, timeout=EACH_TIMEOUT)
        if not response.ok:
            raise CommandError(f"weather: the service answered {response.status}")
        data = response.json()
    except FetchError as exc:
        raise CommandError(f"weather: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandError("weather: the service sent an unexpected answer")
    return data


def where(place: dict[str, Any]) -> str:
    """``Lisbon, Portugal``; ``Portland, Oregon, United States`` (the region when it helps)."""
    parts: list[str] = []
    for key in ("name", "admin1", "country"):
        value = place.get(key)
        if isinstance(value, str) and one_line(value) and one_line(value) not in parts:
            parts.append(clip(one_line(value), 60))
    return ", ".join(parts) or "there"


def conditions(forecast: dict[str, Any], units: str) -> str:
    """``18.2°C (feels 17.5°C), partly cloudy, humidity 70%, wind 12.3 km/h``."""
    now = forecast.get("current")
    names = forecast.get("current_units")
    names = names if isinstance(names, dict) else {}
    fields = ("temperature_2m", "apparent_temperature", "relative_humidity_2m", "wind_speed_10m")
    if not isinstance(now, dict) or not all(isinstance(now.get(k), int | float) for k in fields):
        raise CommandError("weather: the service sent an unexpected answer")
    degrees = unit(names, "temperature_2m", "°F" if units == "imperial" else "°C")
    speed = unit(names, "wind_speed_10m", "mph" if units == "imperial" else "km/h")
    speed = "mph" if speed == "mp/h" else speed  # as Open-Meteo spells it
    temperature = f"{now['temperature_2m']:.1f}{degrees}"
    feels = f"{now['apparent_temperature']:.1f}{degrees}"
    parts = [f"{temperature} (feels {feels})"]
    code = now.get("weather_code")
    if isinstance(code, int):
        parts.append(WMO.get(code, f"weather code {code}"))
    parts.append(f"humidity {round(now['relative_humidity_2m'])}%")
    parts.append(f"wind {now['wind_speed_10m']:.1f} {speed}")
    return ", ".join(parts)


def unit(names: dict[str, Any], key: str, default: str) -> str:
    value = names.get(key)
    return clip(one_line(value), 8) if isinstance(value, str) and one_line(value) else default
