"""Invitation links: where the app is reached, and a rater's link to it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_ADDRESS = "http://localhost:8501"  # `earshot listen serve`'s default, when nothing better is known


def app_address(page_url: str | None, page_path: str) -> str:
    """The app's address from the URL a page of it was opened at (``st.context.url``): scheme, host,
    port and any path prefix the app is served under, without the page's own path ``page_path``,
    query or fragment. :data:`DEFAULT_ADDRESS` when the URL is unknown or not http(s)."""
    if not page_url:
        return DEFAULT_ADDRESS
    parts = urlsplit(page_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return DEFAULT_ADDRESS
    path = parts.path.rstrip("/")
    if path.endswith("/" + page_path.strip("/")):
        path = path[: -len(page_path.strip("/")) - 1]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def invitation_link(address: str, token: str) -> str:
    """A rater's link: the app's address with their token."""
    return f"{address.rstrip('/')}/?token={token}"
