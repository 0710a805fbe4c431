"""commands/weather.py: !weather against a loopback server answering as Open-Meteo does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

if TYPE_CHECKING:
    from webserver import WebServer

    from bot.testing import CommandBot, LoadCommand

WEATHER = Path(__file__).resolve().parents[1] / "commands" / "weather.py"
SEARCH, FORECAST = "/v1/search", "/v1/forecast"
JSON = "application/json; charset=utf-8"
CURRENT = "temperature_2m,relative_humidity_2m,apparent_temperature,weather_code,wind_speed_10m"

LISBON = {
    "id": 2267057,
    "name": "Lisbon",
    "latitude": 38.71667,
    "longitude": -9.13333,
    "elevation": 45.0,
    "feature_code": "PPLC",
    "country_code": "PT",
    "admin1_id": 2267056,
    "timezone": "Europe/Lisbon",
    "population": 517802,
    "country_id": 2264397,
    "country": "Portugal",
    "admin1": "Lisbon",
}
PORTLAND = {
    "name": "Portland",
    "latitude": 45.52345,
    "longitude": -122.67621,
    "timezone": "America/Los_Angeles",
    "country": "United States",
    "admin1": "Oregon",
}


def geocoding(*places: dict[str, Any]) -> str:
    """A geocoding answer: no "results" key at all when nothing is found, as Open-Meteo does."""
    found: dict[str, Any] = {"results": list(places)} if places else {}
    return json.dumps({**found, "generationtime_ms": 0.52})


def forecast(imperial: bool = False, **current: Any) -> str:
    values = {
        "time": "2024-05-01T14:00",
        "interval": 900,
        "temperature_2m": 64.8 if imperial else 18.2,
        "relative_humidity_2m": 70,
        "apparent_temperature": 63.5 if imperial else 17.5,
        "weather_code": 2,
        "wind_speed_10m": 7.6 if imperial else 12.3,
    }
    units = {
        "time": "iso8601",
        "interval": "seconds",
        "temperature_2m": "°F" if imperial else "°C",
        "relative_humidity_2m": "%",
        "apparent_temperature": "°F" if imperial else "°C",
        "weather_code": "wmo code",
        "wind_speed_10m": "mp/h" if imperial else "km/h",
    }
    return json.dumps(
        {
            "latitude": 38.72,
            "longitude": -9.14,
            "generationtime_ms": 0.03,
            "utc_offset_seconds": 3600,
            "timezone": "Europe/Lisbon",
            "timezone_abbreviation": "WEST",
            "elevation": 45.0,
            "current_units": units,
            "current": {**values, **current},
        }
    )


def load(
    load_command: LoadCommand,
    web_server: WebServer,
    http: dict[str, Any] | None = None,
    **settings: Any,
) -> CommandBot:
    return load_command(
        WEATHER,
        settings={
            "geocoding_endpoint": web_server.url + SEARCH,
            "forecast_endpoint": web_server.url + FORECAST,
            **settings,
        },
        http={"allow_private": ["127.0.0.1"], **(http or {})},
    )


def queries(web_server: WebServer) -> list[tuple[str, dict[str, list[str]]]]:
    return [(r.path.split("?")[0], parse_qs(r.query)) for r in web_server.requests]


def test_found_metric(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(SEARCH, geocoding(LISBON), content_type=JSON)
    web_server.route(FORECAST, forecast(), content_type=JSON)
    assert load(load_command, web_server).say("!weather lisbon") == [
        "Lisbon, Portugal: 18.2°C (feels 17.5°C), partly cloudy, humidity 70%, wind 12.3 km/h"
    ]
    assert queries(web_server) == [
        (SEARCH, {"name": ["lisbon"], "count": ["1"], "language": ["en"], "format": ["json"]}),
        (
            FORECAST,
            {
                "latitude": ["38.71667"],
                "longitude": ["-9.13333"],
                "current": [CURRENT],
                "timezone": ["auto"],
            },
        ),
    ]


def test_found_imperial(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(SEARCH, geocoding(PORTLAND), content_type=JSON)
    web_server.route(FORECAST, forecast(imperial=True, weather_code=95), content_type=JSON)
    bot = load(load_command, web_server, units="imperial")
    assert bot.say("!weather Portland") == [
        "Portland, Oregon, United States: 64.8°F (feels 63.5°F), thunderstorm, humidity 70%, "
        "wind 7.6 mph"
    ]
    (_, sent) = queries(web_server)[1]
    assert sent["temperature_unit"] == ["fahrenheit"] and sent["wind_speed_unit"] == ["mph"]
    assert sent["latitude"] == ["45.52345"] and sent["longitude"] == ["-122.67621"]


def test_a_place_with_spaces_and_accents(load_command: LoadCommand, web_server: WebServer) -> None:
    place = {**LISBON, "name": "São Paulo", "admin1": "São Paulo", "country": "Brazil"}
    web_server.route(SEARCH, geocoding(place), content_type=JSON)
    web_server.route(FORECAST, forecast(weather_code=7), content_type=JSON)
    assert load(load_command, web_server).say("!weather  São   Paulo ") == [
        "São Paulo, Brazil: 18.2°C (feels 17.5°C), weather code 7, humidity 70%, wind 12.3 km/h"
    ]
    assert queries(web_server)[0][1]["name"] == ["São Paulo"]
    assert "S%C3%A3o+Paulo" in web_server.paths[0] or "S%C3%A3o%20Paulo" in web_server.paths[0]


def test_not_found(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(SEARCH, geocoding(), content_type=JSON)
    assert load(load_command, web_server).say("!weather Xyzzyville") == [
        "weather: no place named Xyzzyville"
    ]
    assert [path for path, _ in queries(web_server)] == [SEARCH]  # no forecast asked


@pytest.mark.parametrize("broken", [SEARCH, FORECAST])
def test_a_service_error(load_command: LoadCommand, web_server: WebServer, broken: str) -> None:
    web_server.route(SEARCH, geocoding(LISBON), content_type=JSON)
    web_server.route(FORECAST, forecast(), content_type=JSON)
    error = json.dumps({"error": True, "reason": "Service unavailable"})
    web_server.route(broken, error, status=503, content_type=JSON)
    assert load(load_command, web_server).say("!weather Lisbon") == [
        "weather: the service answered 503"
    ]


def test_an_unexpected_answer(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(SEARCH, geocoding(LISBON), content_type=JSON)
    web_server.route(FORECAST, json.dumps({"current": {"temperature_2m": "warm"}}))
    assert load(load_command, web_server).say("!weather Lisbon") == [
        "weather: the service sent an unexpected answer"
    ]


def test_a_timeout(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(SEARCH, geocoding(LISBON), content_type=JSON)
    web_server.hold(FORECAST)
    (line,) = load(load_command, web_server, http={"timeout": 1}).say("!weather Lisbon")
    assert line.startswith("weather: 127.0.0.1")
    assert "time" in line


def test_usage(load_command: LoadCommand, web_server: WebServer) -> None:
    bot = load(load_command, web_server)
    assert bot.say("!weather") == ["usage: weather PLACE, e.g. !weather Lisbon"]
    assert bot.say("!weather " + "x" * 101) == ["weather: a place's name is at most 100 characters"]
    assert web_server.paths == []


def test_every_wmo_code_has_words(load_command: LoadCommand, web_server: WebServer) -> None:
    wmo = load(load_command, web_server).module.WMO
    documented = {0, 1, 2, 3, 45, 48, 51, 53, 55, 56, 57, 61, 63, 65, 66, 67, 71, 73, 75, 77}
    documented |= {80, 81, 82, 85, 86, 95, 96, 99}
    assert set(wmo) == documented and all(wmo.values())
