"""URLs in answers, built without trusting the request's Host header.

Flask's absolute URLs take their host from the request, which any client (or a proxy that does
not rewrite it) sets to what it likes, so a link in an answer could point anywhere. Answers carry
URLs under POSTERQ_PUBLIC_URL when it is set, and relative ones otherwise.
"""

from flask import request, url_for

from posterq.api import context


def public_url_for(endpoint: str, **values) -> str:
    """An endpoint's URL: under POSTERQ_PUBLIC_URL when set, else relative to this server's root."""
    path = url_for(endpoint, **values)  # relative, with the root the app is mounted at
    base = context.settings().public_url
    if not base:
        return path
    # The public URL names the app's root as clients see it, so it replaces the mount point.
    return base.rstrip("/") + path[len(request.script_root):]


def public_root() -> str:
    """The app's root URL for clients: POSTERQ_PUBLIC_URL, else this server's root path."""
    return context.settings().public_url.rstrip("/") or request.script_root or "/"
