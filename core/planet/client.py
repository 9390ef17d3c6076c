"""A ``planet`` SDK client (sync ``planet.Planet``) with the behaviour the plugin needs.

* bound to any base URL (a mirror or the tests' loopback server); when it is not Planet's, the
  SDK's product-bundle spec cache is preset so nothing is fetched from api.planet.com;
* 429 retried after the server's ``Retry-After`` (the SDK ignores it), 5xx and dropped
  connections / timeouts retried with exponential back-off (1, 2, 4 … s, at most ``MAX_BACKOFF``);
* 401/403 become "the Planet API key was refused" naming where the key came from, never the key;
* every message goes through :func:`redact`; ``is_canceled`` is checked before every request
  (so between result pages and order polls) and during retry waits.

``planet`` (and ``httpx``) are imported inside the functions: the plugin loads without them.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from typing import Callable, Iterator, Optional

from ..errors import Cancelled, UserInputError

DEFAULT_BASE_URL = "https://api.planet.com"
#: Retries of one request (429, 5xx, connection errors and timeouts) before giving up.
MAX_RETRIES = 4
#: Longest back-off between two tries without Retry-After (s).
MAX_BACKOFF = 30.0
#: Longest Retry-After honoured (s); a server asking for more is reported instead of waited for.
MAX_RETRY_AFTER = 600.0
#: Statuses retried.
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Where the Planet API key is managed (for the refused-key message).
KEY_HELP = ("Check the key on your Planet account page (Account → My Settings → API key) and store it in a "
            "QGIS authentication configuration (Settings → Options → Authentication); see the README, "
            "'Planet API key'.")

#: The part of the Orders API bundle spec the plugin uses (PSScene only), preset when the base URL
#: is not Planet's so that the SDK's item-type/bundle validation never fetches it from api.planet.com.
PSSCENE_BUNDLES = {
    "analytic_sr_udm2": {"assets": {"PSScene": ["ortho_analytic_4b_sr", "ortho_analytic_4b_xml", "ortho_udm2"]}},
    "analytic_8b_sr_udm2": {"assets": {"PSScene": ["ortho_analytic_8b_sr", "ortho_analytic_8b_xml",
                                                   "ortho_udm2"]}},
    "basic_analytic_udm2": {"assets": {"PSScene": ["basic_analytic_4b", "basic_analytic_4b_rpc",
                                                   "basic_analytic_4b_xml", "basic_udm2"]}},
    "analytic_udm2": {"assets": {"PSScene": ["ortho_analytic_4b", "ortho_analytic_4b_xml", "ortho_udm2"]}},
    "visual": {"assets": {"PSScene": ["ortho_visual"]}},
}


def redact(text: object, api_key: Optional[str], *more: str) -> str:
    """``text`` with every occurrence of ``api_key`` (and of the ``more`` secrets, e.g. a proxy
    password) replaced by ``***``, also in URL-quoted forms."""
    text = str(text)
    for secret in (api_key, *more):
        if secret:
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
                text = text.replace(form, "***")
    return text


def _proxy_secrets(proxy: Optional[str]) -> list:
    """The password of a ``http://user:password@host:port`` proxy URL (to redact), if any."""
    password = urllib.parse.urlsplit(proxy).password if proxy else None
    return [urllib.parse.unquote(password)] if password else []


def is_planet_url(base_url: str) -> bool:
    """True for Planet's own API host (https://api.planet.com)."""
    return urllib.parse.urlsplit(base_url).hostname == urllib.parse.urlsplit(DEFAULT_BASE_URL).hostname


def preset_bundle_spec(bundles: Optional[dict] = None) -> None:
    """Give the SDK's lazily fetched product-bundle spec (planet.specs.PRODUCT_BUNDLES) a value
    so it is never downloaded from the hard-coded api.planet.com URL; ``bundles`` default
    :data:`PSSCENE_BUNDLES`. An existing cache (a real spec fetched earlier) is kept."""
    import itertools

    from planet import specs

    if getattr(specs.PRODUCT_BUNDLES, "cache", None) is not None:
        return
    bundles = bundles or PSSCENE_BUNDLES
    item_types = set(itertools.chain.from_iterable(bundle["assets"].keys() for bundle in bundles.values()))
    specs.PRODUCT_BUNDLES.cache = {"bundles": bundles, "bundle_names": bundles.keys(), "item_types": item_types}


def retry_wait(status: Optional[int], retry_after: Optional[str], attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` (``attempt`` ≥ 1): the server's Retry-After
    (seconds or an HTTP date) for a 429 when given, else 2**(attempt-1) s capped at MAX_BACKOFF."""
    if status == 429 and retry_after:
        seconds = _retry_after_seconds(retry_after)
        if seconds is not None:
            return seconds
    return min(MAX_BACKOFF, 2.0 ** (attempt - 1))


def _retry_after_seconds(value: str) -> Optional[float]:
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _session_class():
    """A ``planet.http.Session`` subclass with this module's retries and status errors."""
    import httpx
    from planet import exceptions
    from planet.http import Session

    transport_errors = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException)

    class PluginSession(Session):
        """Session whose errors carry the HTTP status and Retry-After, retried by :meth:`_retry`."""

        is_canceled: Optional[Callable[[], bool]] = None
        retries = MAX_RETRIES
        waits: list

        @classmethod
        def _convert_and_raise(cls, error):
            try:
                super()._convert_and_raise(error)
            except exceptions.APIError as exc:
                exc.status_code = error.response.status_code
                exc.retry_after = error.response.headers.get("Retry-After")
                raise

        async def _send(self, request, stream=False):
            if self.is_canceled is not None and self.is_canceled():
                raise Cancelled("Cancelled by the user")
            return await super()._send(request, stream=stream)

        async def _retry(self, func, *a, **kw):
            attempt = 0
            while True:
                attempt += 1
                try:
                    return await func(*a, **kw)
                except exceptions.APIError as exc:
                    status = getattr(exc, "status_code", None)
                    if status not in RETRY_STATUSES or attempt > self.retries:
                        raise
                    wait = retry_wait(status, getattr(exc, "retry_after", None), attempt)
                    if wait > MAX_RETRY_AFTER:
                        raise
                except transport_errors:
                    if attempt > self.retries:
                        raise
                    wait = retry_wait(None, None, attempt)
                self.waits.append(wait)
                await self._sleep(wait)

        async def _sleep(self, seconds: float) -> None:
            end = time.monotonic() + seconds
            while True:
                if self.is_canceled is not None and self.is_canceled():
                    raise Cancelled("Cancelled by the user")
                left = end - time.monotonic()
                if left <= 0:
                    return
                await asyncio.sleep(min(0.2, left))

    return PluginSession


def is_loopback_url(url: str) -> bool:
    """True for http(s)://localhost, 127.x.x.x or [::1] URLs (the tests' servers)."""
    import ipaddress

    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_session(api_key: str, proxy: Optional[str] = None, timeout: float = 60.0,
                 is_canceled: Optional[Callable[[], bool]] = None, retries: int = MAX_RETRIES,
                 trust_env: bool = True):
    """A ``planet.http.Session`` authenticated with ``api_key``, going through ``proxy``
    (``http://host:port``, None = direct or, with ``trust_env``, the environment's HTTPS_PROXY),
    ``timeout`` seconds per connect/read, with this module's retries."""
    import httpx
    from planet import Auth

    session = _session_class()(auth=Auth.from_key(api_key), read_timeout_secs=timeout)
    old = session._client
    session._client = httpx.AsyncClient(auth=old.auth, headers=old.headers, timeout=httpx.Timeout(timeout),
                                        follow_redirects=True, event_hooks=old.event_hooks, trust_env=trust_env,
                                        **({"proxy": proxy} if proxy else {}))
    session.is_canceled = is_canceled
    session.retries = retries
    session.waits = []
    return session


def _http_message(exc: BaseException, base_url: str, timeout: float, retries: int) -> str:
    import httpx

    host = urllib.parse.urlsplit(base_url).netloc
    if isinstance(exc, httpx.TimeoutException):
        return (f"The Planet API at {host} did not answer within {timeout:g} s (after {retries} retries). "
                "Try again later or raise the timeout; behind a proxy, check QGIS's proxy settings "
                "(Settings → Options → Network).")
    return (f"The Planet API at {host} cannot be reached ({type(exc).__name__}: {exc}). Check the network "
            "connection, the Planet URL setting and QGIS's proxy settings (Settings → Options → Network).")


@contextlib.contextmanager
def open_planet(api_key: str, base_url: str = DEFAULT_BASE_URL, proxy: Optional[str] = None,
                timeout: float = 60.0, is_canceled: Optional[Callable[[], bool]] = None,
                key_source: str = "the parameters", retries: int = MAX_RETRIES) -> Iterator[object]:
    """``with open_planet(key, base_url) as pl:`` a sync ``planet.Planet`` client.

    Errors inside the block become :class:`UserInputError` (401/403: "the Planet API key was
    refused … (key from <key_source>)"; others with the server's answer) with the key redacted;
    :class:`Cancelled` passes through. ``timeout``: seconds per connect/read of one request.
    """
    if not api_key:
        raise UserInputError("No Planet API key: store one in a QGIS authentication configuration and choose "
                             "it in the 'Planet API key' parameter, or set the provider setting or PL_API_KEY. "
                             + KEY_HELP)
    from planet import Planet, exceptions  # first: a missing SDK is named as such (not httpx)
    import httpx

    base_url = base_url.rstrip("/")
    if not is_planet_url(base_url):
        preset_bundle_spec()
    loopback = is_loopback_url(base_url)  # never through a proxy
    session = make_session(api_key, None if loopback else proxy, timeout, is_canceled, retries, not loopback)
    secrets = [api_key, *_proxy_secrets(proxy)]
    try:
        yield Planet(session=session, base_url=base_url)
    except (exceptions.InvalidAPIKey, exceptions.NoPermission) as exc:
        status = getattr(exc, "status_code", 401)
        raise UserInputError(redact(
            f"The Planet API key was refused (HTTP {status}: {_short(exc)}; key from {key_source}). {KEY_HELP}",
            *secrets)) from None
    except exceptions.TooManyRequests as exc:
        wait = getattr(exc, "retry_after", None)
        raise UserInputError(redact(
            f"Planet's rate limit was reached (HTTP 429, still after {retries} retries"
            + (f"; the server asks to wait {wait} s" if wait else "") + f"): {_short(exc)}. Try again later; "
            "several QGIS runs with one key share its limit.", *secrets)) from None
    except exceptions.APIError as exc:
        status = getattr(exc, "status_code", None)
        raise UserInputError(redact(
            f"The Planet API answered HTTP {status or '?'} to a request: {_short(exc)}"
            + (f" (still after {retries} retries)." if status in RETRY_STATUSES else "."), *secrets)) from None
    except (httpx.HTTPError, OSError) as exc:
        raise UserInputError(redact(_http_message(exc, base_url, timeout, retries), *secrets)) from None
    except exceptions.PlanetError as exc:
        raise UserInputError(redact(f"The Planet client failed: {_short(exc)}", *secrets)) from None
    finally:
        _close(session)


def _short(exc: BaseException, limit: int = 300) -> str:
    """The first ``limit`` characters of an exception's text, on one line."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _close(session) -> None:
    """Close the session's HTTP client and stop its event-loop thread."""
    loop = getattr(session, "_loop", None)
    if loop is None:
        return
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(session.aclose(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
