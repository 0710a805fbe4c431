"""Wikipedia: ``!wiki TERM`` answers with the start of the article and its address.

It asks a MediaWiki REST API's page summary (``endpoint`` + the title,
percent-encoded, spaces as underscores): English Wikipedia by default, another
language or wiki with ``modules: {wiki: {endpoint: URL}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from bot.api import CommandError, Context, FetchError, command

from ._common import clip, one_line

LINE_BYTES = 350  # of the reply: what fits one IRC line whatever the channel and host
MAX_TITLE_BYTES = 255  # MediaWiki's limit


@dataclass(frozen=True)
class Settings:
    """modules: {wiki: {...}} in config.yaml (or a channel's modules:)."""

    endpoint: str = "https://en.wikipedia.org/api/rest_v1/page/summary/"

    def __post_init__(self) -> None:
        if urlsplit(self.endpoint).scheme not in ("http", "https"):
            raise ValueError("endpoint must be an http:// or https:// URL")


@command
def wiki(ctx: Context, args: str) -> str:
    """wiki TERM -- the start of the Wikipedia article on TERM, and its address"""
    term = one_line(args)
    if not term:
        raise CommandError("usage: wiki TERM, e.g. !wiki Lisbon")
    if len(term.encode()) > MAX_TITLE_BYTES:
        raise CommandError("wiki: that is too long for an article's title")
    settings: Settings = ctx.settings
    url = settings.endpoint + quote(term.replace(" ", "_"), safe="")
    try:
        response = ctx.fetch(url)
        if response.status == 404:
            raise CommandError(f"wiki: no article named {clip(term, 80)}")
        if not response.ok:
            raise CommandError(f"wiki: the service answered {response.status}")
        summary = response.json()
    except FetchError as exc:
        raise CommandError(f"wiki: {exc}") from exc
    if not isinstance(summary, dict):
        raise CommandError("wiki: the service sent an unexpected answer")
    return answer(summary, term)


def answer(summary: dict[str, Any], term: str) -> str:
    """One line from a page summary: ``Title: extract... URL``."""
    title = one_line(str(summary.get("title") or term))
    page = dig(summary, "content_urls", "desktop", "page")
    page = one_line(page) if isinstance(page, str) else ""
    if summary.get("type") == "disambiguation":
        if not page:
            return f"wiki: {clip(title, 100)} may mean several things; say which"
        return fit(f"wiki: {title} may mean several things, see", page)
    extract = one_line(str(summary.get("extract") or ""))
    return fit(f"{title}: {extract}" if extract else title, page)


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def fit(text: str, page: str) -> str:
    """``text page``, ``text`` cut (with an ellipsis) so that the whole fits one line."""
    room = LINE_BYTES - len(page.encode()) - 1
    data = text.encode()
    if len(data) > room:
        text = data[: max(room - 3, 0)].decode(errors="ignore")
        text = (text.rsplit(" ", 1)[0] if " " in text[-30:] else text).rstrip() + "…"
    return f"{text} {page}".strip()
