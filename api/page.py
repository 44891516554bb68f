"""The web page blueprint: `/` and its static files (plain HTML, CSS and ES modules; no build, no CDN)."""

import os
from pathlib import Path

from flask import Blueprint, send_from_directory

from posterq.api.exceptions import NotFound

blueprint = Blueprint("page", __name__)

STATIC = Path(__file__).resolve().parent / "static"
# Set explicitly: mimetypes reads the system's tables, which differ on .js between machines, and
# browsers load ES modules only with a JavaScript type.
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Everything comes from this origin: thumbnails are blob: URLs of the user's own files.
_CSP = ("default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _send(name: str):
    response = send_from_directory(STATIC, name, mimetype=_TYPES.get(Path(name).suffix))
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/")
def index():
    """The page: pick or drop posters, watch the job, browse and download the results."""
    return _send("index.html")


@blueprint.get("/static/<name>")
def static(name: str):
    """One of the page's files (api/static/); 404 for anything else."""
    # A name is looked up among the folder's entries, never turned into a path: a name too long
    # for the filesystem (ENAMETOOLONG) or one with "../" in it is simply not among them.
    if Path(name).suffix not in _TYPES or name not in os.listdir(STATIC):
        raise NotFound(f"the page has no file {name!r}", "not_found")
    return _send(name)
