"""The HTTP plumbing of the Sentinel-1 catalogue search and download (standard library only):
JSON requests and streamed downloads with retries (429, 5xx, timeouts, broken connections),
cancel checks, credentials sent only to the site they belong to, and errors that say what to do.

Credentials: HTTP Basic (ASF / NASA Earthdata), or a bearer token obtained from an OAuth2
token endpoint with the user name and password (Copernicus Data Space: ``grant_type=password``,
``client_id=cdse-public``). The Authorization header goes to the URL's host; after a redirect it is
sent again only when the target answers 401 and is the same site (same host, or same parent domain)
or, for Basic, a login host that asks (NASA Earthdata); never to another host that does not ask
(e.g. a signed S3 URL).
"""
from __future__ import annotations

import http.client
import http.cookiejar
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..errors import UserInputError, check_canceled
from ..planet.client import MAX_RETRIES, RETRY_STATUSES, redact, retry_wait

#: Longest wait between two tries (s) honoured from Retry-After.
MAX_RETRY_AFTER = 120.0
#: Client id of the Copernicus Data Space public OAuth2 client.
CDSE_CLIENT_ID = "cdse-public"
USER_AGENT = "SurfaceMotionToolbox-QGIS"


@dataclass
class Credentials:
    """User name and password; with ``token_url`` they are exchanged for a bearer token."""

    username: str = ""
    password: str = ""
    token_url: str = ""
    client_id: str = CDSE_CLIENT_ID

    def secrets(self) -> list:
        return [s for s in (self.password,) if s]


class HttpError(UserInputError):
    """A request failed for good; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class _NoAuthAcrossHosts(urllib.request.HTTPRedirectHandler):
    """Follows redirects, dropping the Authorization header when the host changes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            for name in list(new.headers):
                if name.lower() == "authorization":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


class Session:
    """One run's HTTP client: cookies (Earthdata's login redirects set them), proxy, timeout (s per
    connect/read), retries, cancel and the authorisation header of ``credentials``."""

    def __init__(self, credentials: Optional[Credentials] = None, timeout: float = 60.0,
                 proxy: Optional[str] = None, is_canceled: Optional[Callable[[], bool]] = None,
                 retries: int = MAX_RETRIES, sleep: Callable[[float], None] = time.sleep):
        self.credentials = credentials
        self.timeout = float(timeout)
        self.is_canceled = is_canceled
        self.retries = int(retries)
        self.sleep = sleep
        self.waits: list = []
        self._token: Optional[str] = None
        handlers = [urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoAuthAcrossHosts()]
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}))
        self.opener = urllib.request.build_opener(*handlers)

    # -- authorisation

    def scrub(self, text: object) -> str:
        """``text`` without the password or token."""
        secrets = (self.credentials.secrets() if self.credentials else []) + ([self._token] if self._token else [])
        return redact(text, *secrets) if secrets else str(text)

    def has_credentials(self) -> bool:
        return self.credentials is not None and bool(self.credentials.username or self.credentials.password)

    def authorization(self) -> Optional[str]:
        """The Authorization header value, None without credentials."""
        c = self.credentials
        if not self.has_credentials():
            return None
        if c.token_url:
            if self._token is None:
                self._token = self._fetch_token()
            return f"Bearer {self._token}"
        import base64

        return "Basic " + base64.b64encode(f"{c.username}:{c.password}".encode()).decode("ascii")

    def _fetch_token(self) -> str:
        c = self.credentials
        body = urllib.parse.urlencode({"grant_type": "password", "username": c.username, "password": c.password,
                                       "client_id": c.client_id}).encode()
        try:
            answer = self._json_once(c.token_url, body, {"Content-Type": "application/x-www-form-urlencoded"},
                                     "token request", "POST", authorize=False)
        except HttpError as exc:
            if exc.status in (400, 401, 403):
                raise HttpError(f"The user name or password was refused by {_host(c.token_url)} (HTTP "
                                f"{exc.status}). Check the QGIS authentication configuration (Settings → Options → "
                                "Authentication, method Basic: your Copernicus Data Space account).", exc.status) \
                    from None
            raise
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise HttpError(f"The token endpoint {_host(c.token_url)} answered without an access_token.")
        return str(token)

    # -- requests

    def open(self, url: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
             method: Optional[str] = None, what: str = "request", authorize: bool = True):
        """The response to one request, retried on 429/5xx, timeouts and connection errors; a 401 with a
        bearer token fetches a new token once (tokens expire); a 401/403 or other 4xx raises
        :class:`HttpError` at once."""
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            check_canceled(self.is_canceled)
            status, retry_after = None, None
            try:
                return self._open_once(url, body, headers or {}, method, authorize)
            except urllib.error.HTTPError as exc:
                status, retry_after = exc.code, exc.headers.get("Retry-After") if exc.headers else None
                detail = _body_text(exc)
                if status == 401 and authorize and self._token is not None and not refreshed:
                    self._token, refreshed = None, True  # the token expired (CDSE's last 10 min): a new one
                    attempt -= 1
                    continue
                if status not in RETRY_STATUSES or attempt > self.retries:
                    raise self._status_error(url, status, detail, attempt, what) from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
                    http.client.HTTPException, OSError) as exc:
                if attempt > self.retries:
                    raise HttpError(self.scrub(_network_message(url, exc, self.timeout, self.retries, what))) from None
            wait = retry_wait(status, retry_after, attempt)
            if wait > MAX_RETRY_AFTER:
                raise HttpError(f"{_host(url)} asks to wait {wait:.0f} s before the next {what}; try again later.",
                                status)
            self.waits.append(wait)
            self._sleep(wait)

    def _open_once(self, url, body, headers, method, authorize=True):
        request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
        request.add_header("User-Agent", USER_AGENT)
        for name, value in headers.items():
            request.add_header(name, value)
        auth = self.authorization() if authorize else None
        if auth:
            request.add_unredirected_header("Authorization", auth)
        try:
            return self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and auth and exc.url and exc.url != url and (
                    auth.startswith("Basic") or _same_site(exc.url, url)):
                # a redirect target asks for the credentials: a login host answering a Basic challenge
                # (NASA Earthdata), or the same site (CDSE's download → zipper.dataspace.copernicus.eu)
                retry = urllib.request.Request(exc.url, method="GET")
                retry.add_header("User-Agent", USER_AGENT)
                for name, value in headers.items():
                    retry.add_header(name, value)
                retry.add_unredirected_header("Authorization", auth)
                return self.opener.open(retry, timeout=self.timeout)
            raise

    def _json_once(self, url, body, headers, what, method=None, authorize=True):
        with self.open(url, body, {"Accept": "application/json", **headers}, method, what or "request",
                       authorize) as response:
            raw = response.read()
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise HttpError(f"{_host(url)} answered with something that is not JSON ({raw[:80]!r}…); check the "
                            "URL setting (a STAC API root, e.g. https://stac.dataspace.copernicus.eu/v1).") from None

    def json(self, url: str, payload: Optional[dict] = None, what: str = "request") -> dict:
        """GET ``url`` (or POST ``payload`` as JSON) and parse the JSON answer."""
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self._json_once(url, body, headers, what)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            check_canceled(self.is_canceled)
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sleep(min(0.2, left))

    def _status_error(self, url: str, status: int, detail: str, attempt: int, what: str) -> HttpError:
        host = _host(url)
        if status in (401, 403):
            hint = ("no credentials were given: choose a QGIS authentication configuration (method Basic) with "
                    "your account" if not self.has_credentials() else
                    "the credentials were refused: check the user name and password in the QGIS authentication "
                    "configuration (Settings → Options → Authentication)")
            return HttpError(self.scrub(f"{host} refused the {what} (HTTP {status}): {hint}. {detail}".strip()),
                             status)
        tries = f" (still after {attempt - 1} retries)" if status in RETRY_STATUSES else ""
        return HttpError(self.scrub(f"{host} answered HTTP {status} to the {what}{tries}: {detail or 'no detail'}. "
                                    + ("Try again later." if status >= 500 or status == 429 else
                                       "Check the parameters and the URL setting.")), status)


def _same_site(first: str, second: str) -> bool:
    """Same host, or host names under the same parent domain (a.example.eu, b.example.eu)."""
    one, two = urllib.parse.urlsplit(first).hostname or "", urllib.parse.urlsplit(second).hostname or ""
    if one == two:
        return True
    if any(part.replace(".", "").isdigit() or ":" in part for part in (one, two)):
        return False  # IP addresses: only the same one
    return one.split(".")[-2:] == two.split(".")[-2:] and one.count(".") >= 1


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _body_text(exc: urllib.error.HTTPError, limit: int = 300) -> str:
    try:
        text = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 — the body is only a detail of the message
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _network_message(url: str, exc: BaseException, timeout: float, retries: int, what: str) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return (f"{_host(url)} did not answer the {what} within {timeout:g} s (after {retries} retries). Try again "
                "later or raise the timeout; behind a proxy, check QGIS's proxy settings (Settings → Options → "
                "Network).")
    return (f"{_host(url)} cannot be reached for the {what} ({type(reason).__name__}: {reason}; after {retries} "
            "retries). Check the network connection, the URL setting and QGIS's proxy settings.")

