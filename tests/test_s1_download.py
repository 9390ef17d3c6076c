"""surfacemotion:s1download against the loopback server of tests/stac_server.py: OAuth2 token and
Basic credentials, 401, 500, timeouts, truncated transfers resumed with Range, a server ignoring
Range, cancel then resume in the next run, checksum mismatches, and nothing partial left under a
product's name."""
import base64
import contextlib
import hashlib
import os

import pytest
from stac_server import PASSWORD, TOKEN, USER, StacServer

from core.errors import Cancelled, UserInputError
from core.sentinel1.download import PARTIAL_FOLDER, Product, download_products
from core.sentinel1.http import Credentials, HttpError, Session


@pytest.fixture
def server():
    instance = StacServer().start()
    yield instance
    instance.stop()


def products(server, count=2):
    return [Product(p["name"], f"{server.url}/download/{p['name']}.zip", "md5:" + p["md5"], len(p["archive"]))
            for p in server.products[:count]]


def session(server, token=True, password=PASSWORD, **kwargs):
    return Session(Credentials(USER, password, server.url + "/token" if token else ""),
                   kwargs.pop("timeout", 5.0), sleep=lambda s: None, **kwargs)


def files(folder) -> list:
    """Every file under ``folder`` (relative paths), hidden ones included."""
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


def md5(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def test_token_download_writes_verified_archives_and_never_logs_the_password(server, tmp_path):
    lines, progress = [], []
    report = download_products(session(server), products(server), str(tmp_path), progress.append, log=lines.append)
    names = [p["name"] + ".zip" for p in server.products[:2]]
    assert files(tmp_path) == sorted(names) and report.fetched == 2 and report.resumes == 0
    for product in server.products[:2]:
        assert md5(tmp_path / (product["name"] + ".zip")) == product["md5"]
    assert report.bytes == sum(len(p["archive"]) for p in server.products[:2])
    token_requests = server.requests_to("/token")
    assert len(token_requests) == 1 and "grant_type=password" in token_requests[0]["body"]
    assert "Authorization" not in token_requests[0]["headers"]
    assert all(e["headers"]["Authorization"] == f"Bearer {TOKEN}" for e in server.requests_to("/download/"))
    assert progress[-1] == 100.0 and progress == sorted(progress)
    assert all(PASSWORD not in line and TOKEN not in line for line in lines) and "MD5 verified" in lines[0]


def test_an_expired_token_is_renewed_once(server, tmp_path):
    downloader = session(server)
    first, second = products(server, 2)
    download_products(downloader, [first], str(tmp_path))
    server.expire_token()
    download_products(downloader, [second], str(tmp_path))
    assert len(server.requests_to("/token")) == 2 and md5(tmp_path / (second.id + ".zip")) == \
        server.products[1]["md5"]
    assert [e["headers"]["Authorization"] for e in server.requests_to("/download/")] == [
        f"Bearer {TOKEN}", f"Bearer {TOKEN}", f"Bearer {TOKEN}-renewed"]


def test_basic_credentials_are_sent_as_such(server, tmp_path):
    download_products(session(server, token=False), products(server, 1), str(tmp_path))
    header = server.requests_to("/download/")[0]["headers"]["Authorization"]
    assert base64.b64decode(header[6:]).decode() == f"{USER}:{PASSWORD}" and not server.requests_to("/token")


def test_credentials_never_follow_a_redirect_to_another_host(server, tmp_path):
    product = products(server, 1)
    product[0].url = product[0].url.replace("/download/", "/redirect/")
    download_products(session(server), product, str(tmp_path))
    assert md5(tmp_path / (product[0].id + ".zip")) == server.products[0]["md5"]
    first, second = server.requests_to("/redirect/")[0], server.requests_to("/storage/")[0]
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}" and first["headers"]["Host"].startswith("127.0.0.1")
    assert "Authorization" not in second["headers"] and second["headers"]["Host"].startswith("localhost")


def test_a_redirect_within_the_host_gets_the_token_again_when_asked(server, tmp_path):
    product = products(server, 1)
    product[0].url = product[0].url.replace("/download/", "/relay/")
    download_products(session(server), product, str(tmp_path))
    assert md5(tmp_path / (product[0].id + ".zip")) == server.products[0]["md5"]
    asked, given = server.requests_to("/download/")
    assert "Authorization" not in asked["headers"] and given["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_same_site_rule():
    from core.sentinel1.http import _same_site

    assert _same_site("https://download.dataspace.copernicus.eu/x", "https://zipper.dataspace.copernicus.eu/y")
    assert not _same_site("https://datapool.asf.alaska.edu/x", "https://bucket.s3.amazonaws.com/y")
    assert not _same_site("http://127.0.0.1:80/x", "http://localhost:80/y")


def test_a_login_host_that_asks_gets_the_basic_credentials(server, tmp_path):
    product = products(server, 1)
    product[0].url = product[0].url.replace("/download/", "/login-redirect/")
    download_products(session(server, token=False), product, str(tmp_path))
    assert md5(tmp_path / (product[0].id + ".zip")) == server.products[0]["md5"]
    logins = server.requests_to("/login/")
    assert "Authorization" not in logins[0]["headers"] and logins[1]["headers"]["Authorization"].startswith("Basic ")


def test_a_truncated_transfer_resumes_with_range(server, tmp_path):
    server.truncate("/download/", 100_000, count=2)
    product = products(server, 1)
    report = download_products(session(server), product, str(tmp_path))
    assert report.resumes == 2 and md5(tmp_path / (product[0].id + ".zip")) == server.products[0]["md5"]
    assert [e["range"] for e in server.requests_to("/download/")] == [None, "bytes=100000-", "bytes=200000-"]
    assert files(tmp_path) == [product[0].id + ".zip"]


def test_a_server_ignoring_range_sends_everything_again(server, tmp_path):
    server.truncate("/download/", 50_000, count=1)
    server.ignore_range = True
    product = products(server, 1)
    download_products(session(server), product, str(tmp_path))
    assert md5(tmp_path / (product[0].id + ".zip")) == server.products[0]["md5"]


def test_cancel_keeps_the_bytes_hidden_and_the_next_run_resumes(server, tmp_path):
    server.truncate("/download/", 120_000, count=1)
    product = products(server, 1)
    part = tmp_path / PARTIAL_FOLDER / (product[0].id + ".zip.part")

    def is_canceled():  # cancel once some bytes have arrived
        return part.exists() and part.stat().st_size > 0

    with pytest.raises(Cancelled):
        download_products(session(server, is_canceled=is_canceled), product, str(tmp_path), is_canceled=is_canceled)
    left = files(tmp_path)
    assert left == [os.path.join(PARTIAL_FOLDER, product[0].id + ".zip.part")]  # no product name, hidden folder
    kept = os.path.getsize(tmp_path / left[0])
    assert 0 < kept <= 120_000
    report = download_products(session(server), product, str(tmp_path))
    assert server.requests_to("/download/")[-1]["range"] == f"bytes={kept}-"
    assert report.bytes == len(server.products[0]["archive"]) - kept
    assert files(tmp_path) == [product[0].id + ".zip"] and md5(tmp_path / (product[0].id + ".zip")) == \
        server.products[0]["md5"]


def test_a_complete_archive_is_skipped(server, tmp_path):
    download_products(session(server), products(server, 1), str(tmp_path))
    before = len(server.requests_to("/download/"))
    report = download_products(session(server), products(server, 1), str(tmp_path))
    assert report.skipped == 1 and report.fetched == 0 and len(server.requests_to("/download/")) == before


def test_a_checksum_mismatch_keeps_nothing(server, tmp_path):
    product = products(server, 1)
    product[0].checksum = "md5:" + "0" * 32
    with pytest.raises(UserInputError, match="MD5 checksum differs from the catalogue's.*not kept"):
        download_products(session(server), product, str(tmp_path))
    assert files(tmp_path) == []


def test_a_wrong_password_is_refused_without_retries(server, tmp_path):
    with pytest.raises(HttpError, match=r"user name or password was refused by .* \(HTTP 401\)") as error:
        download_products(session(server, password="wrong"), products(server, 1), str(tmp_path))
    assert "wrong" not in str(error.value) and files(tmp_path) == []
    with pytest.raises(HttpError, match=r"refused the download of .* \(HTTP 401\): the credentials were refused"):
        download_products(session(server, token=False, password="wrong"), products(server, 1), str(tmp_path))
    assert len(server.requests_to("/download/")) == 1 and files(tmp_path) == []


def test_500_is_retried_then_reported(server, tmp_path):
    server.inject("/download/", 500, count=1)
    downloader = session(server)
    download_products(downloader, products(server, 1), str(tmp_path))
    assert downloader.waits == [1.0]
    server.inject("/download/", 502, count=10)
    with pytest.raises(HttpError, match=r"HTTP 502 to the download of .* \(still after 2 retries\)"):
        download_products(session(server, retries=2), products(server, 2)[1:], str(tmp_path))
    assert files(tmp_path) == [server.products[0]["name"] + ".zip"]


def test_a_stalled_download_times_out(server, tmp_path):
    server.stall("/download/", 2.0, count=3)
    with pytest.raises(HttpError, match=r"did not answer the download of .* within 0.3 s"):
        download_products(session(server, timeout=0.3, retries=1), products(server, 1), str(tmp_path))
    assert files(tmp_path) == []


@pytest.mark.parametrize("change, message", [
    (dict(url=""), "no http\\(s\\) download URL"),
    (dict(id="../evil"), "not a product id"),
    (dict(checksum="crc:12"), "unknown checksum"),
])
def test_bad_products_are_refused_before_any_request(server, tmp_path, change, message):
    product = products(server, 1)[0]
    for name, value in change.items():
        setattr(product, name, value)
    with pytest.raises(UserInputError, match=message):
        download_products(session(server), [product], str(tmp_path))
    assert server.log == []
    with pytest.raises(UserInputError, match="No product to download"):
        download_products(session(server), [], str(tmp_path))


# --------------------------------------------------------------------------- the algorithm


@pytest.fixture
def inventory(provider, server, run_algorithm, tmp_path):
    """An s1inventory products layer from the loopback catalogue; the token URL pointed at it."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue("SURFACEMOTION_S1_STAC_URL", server.stac_url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_S1_TOKEN_URL", server.url + "/token")
    results, _, _ = run_algorithm("surfacemotion:s1inventory", {
        "AOI_EXTENT": "11.0,11.4,45.0,45.3 [EPSG:4326]", "START_DATE": "2021-06-01", "END_DATE": "2021-07-01",
        "OUTPUT": str(tmp_path / "products.gpkg"), "MOSAICS": str(tmp_path / "mosaics.gpkg")})
    yield str(tmp_path / "products.gpkg")
    from surface_motion.algorithms.settings import DEFAULTS

    for key in ("SURFACEMOTION_S1_STAC_URL", "SURFACEMOTION_S1_TOKEN_URL"):
        ProcessingConfig.setSettingValue(key, DEFAULTS[key])


@contextlib.contextmanager
def basic_auth_config(name: str, password: str = PASSWORD):
    """A QGIS authentication configuration (method Basic) with the test account; its id."""
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("master-for-tests", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName(name)
    config.setConfig("username", USER)
    config.setConfig("password", password)
    stored = manager.storeAuthenticationConfig(config)
    assert stored[0] if isinstance(stored, tuple) else stored
    try:
        yield config.id()
    finally:
        manager.removeAuthenticationConfig(config.id())


@pytest.fixture
def auth_config():
    with basic_auth_config("CDSE test account") as config_id:
        yield config_id


def test_s1download_fetches_the_preselected_products_with_the_auth_config(inventory, server, auth_config,
                                                                          run_algorithm, tmp_path):
    from qgis.core import QgsProcessingFeedback

    lines = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            lines.append(info)

    out = tmp_path / "archives"
    results, _, _ = run_algorithm("surfacemotion:s1download", {
        "INPUT": inventory, "PRESELECTED_ONLY": True, "CREDENTIALS": auth_config, "OUTPUT_FOLDER": str(out)},
        Feedback())
    assert results["N_DOWNLOADED"] == 6 and results["N_SKIPPED"] == 0
    assert len(os.listdir(out)) == 6
    for name in os.listdir(out):
        assert md5(out / name) == server.by_name[name[:-4]]["md5"]
    assert results["MEGABYTES"] == pytest.approx(sum(os.path.getsize(out / n) for n in os.listdir(out)) / 1e6)
    assert all(PASSWORD not in line and TOKEN not in line for line in lines)


def test_s1download_errors_are_clear(inventory, server, auth_config, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="no credentials were given"):
        run_algorithm("surfacemotion:s1download", {"INPUT": inventory, "OUTPUT_FOLDER": str(tmp_path / "a")})
    assert not (tmp_path / "a").exists()
    with pytest.raises(QgsProcessingException, match="cannot be read"):
        run_algorithm("surfacemotion:s1download", {"INPUT": inventory, "CREDENTIALS": "nosuch1",
                                                   "OUTPUT_FOLDER": str(tmp_path / "b")})
    with pytest.raises(QgsProcessingException, match="lacks the field"):
        run_algorithm("surfacemotion:s1download", {"INPUT": str(tmp_path / "mosaics.gpkg"),
                                                   "CREDENTIALS": auth_config, "OUTPUT_FOLDER": str(tmp_path / "c")})
