"""The web page in a real browser: Debian's chromium, driven by Playwright, against the real platform.

A real clip is dropped in through the file input over a link throttled to 200 kB/s (so its upload takes
a few seconds, as a large file's does), the bar is seen to move, the tagged and timed result is read, the
SRT download is parsed and compared with the API's, a click on a segment moves the audio element to it, a
file over a small configured limit gets the 413 message, a missing key the 401 one. Screenshots at desktop
and phone (390 px) widths are saved under test-artifacts/web/."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import Platform, _wait_until
from tests.corpus import OSR, SPEECH
from tests.subtitles import srt_cues
from tingxie.runner import api_command

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "web"
UPLOAD_BYTES_PER_S = 200_000
JFK = SPEECH / "en" / "jfk.wav"  # 11 s, one speaker
CLOCK = re.compile(r"^\d\d:\d\d\.\d–\d\d:\d\d\.\d$")
# Every value the jobs' progress bars take, in order, recorded in the page.
RECORD_BARS = """() => {
  window.barValues = [];
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.target.tagName === "PROGRESS") window.barValues.push(Number(record.target.getAttribute("value")));
    }
  }).observe(document.getElementById("active"), { subtree: true, attributes: true, attributeFilter: ["value"] });
}"""


def _chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is missing: `make test` installs it (deploy/browser-deps.sh)"
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # No sandbox: the suite runs as root, where chromium refuses to start with one.
        launched = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True)
    opened = context.new_page()
    yield opened
    context.close()


def _throttle_uploads(page: Page) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": UPLOAD_BYTES_PER_S}
    cdp.send("Network.emulateNetworkConditions", conditions)


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#language option').length > 1")


def test_a_real_clip_from_drop_to_download_and_playback(page: Page, platform: Platform) -> None:
    _open(page, platform.url)
    assert page.locator("#language").input_value() == "auto"
    assert "en" in page.locator("#language option").evaluate_all("options => options.map(o => o.value)")
    _throttle_uploads(page)
    page.evaluate(RECORD_BARS)
    page.set_input_files("#files", str(OSR))
    page.click("#transcribe")

    page.wait_for_selector("#result:not([hidden]) .segment", timeout=180_000)
    values = page.evaluate("window.barValues")
    uploading = [value for value in values if 0 < value < 1]
    assert uploading, f"the bar never stood between empty and full: {values}"
    assert values[-1] == 1 and len(set(values)) >= 3, values
    job_id = page.locator("#active .job").first.get_attribute("data-job")
    assert job_id and "Completed" in page.locator("#active .job .status").first.inner_text()

    segments = page.locator("#segments .segment")
    assert segments.count() >= 2
    for index in range(segments.count()):
        assert CLOCK.match(segments.nth(index).locator(".when").inner_text())
        assert segments.nth(index).locator(".tag").inner_text() == "[en]"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "desktop.png", full_page=True)

    with page.expect_download() as downloading:
        page.click("[data-format=srt]")
    download = downloading.value
    assert download.suggested_filename == f"{OSR.stem}.srt"
    srt = Path(download.path()).read_text(encoding="utf-8")
    assert srt == httpx.get(f"{platform.url}/v1/jobs/{job_id}/transcript", params={"format": "srt"}).text
    cues = srt_cues(srt)
    assert len(cues) >= segments.count() and [cue.number for cue in cues] == list(range(1, len(cues) + 1))
    assert all(cue.start < cue.end for cue in cues)

    page.wait_for_function("document.getElementById('player').readyState >= 1")
    second = segments.nth(1)
    start = float(second.get_attribute("data-start") or "nan")
    second.click()
    position = page.evaluate("document.getElementById('player').currentTime")
    assert start - 0.05 <= position <= start + 1.0, (start, position)


def test_phone_width_in_chinese_reopens_a_recent_job(browser: Browser, platform: Platform) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    page = context.new_page()
    with OSR.open("rb") as audio:  # a finished job for the recent list, made over the API
        job = httpx.post(f"{platform.url}/v1/jobs", files={"file": (OSR.name, audio)}, timeout=60).json()
    _wait_until(lambda: httpx.get(f"{platform.url}/v1/jobs/{job['id']}").json()["status"] == "completed", "the job")
    try:
        _open(page, platform.url)
        assert page.locator("#transcribe").inner_text() == "开始转写"
        line = page.locator(f"#recent-jobs .job[data-job='{job['id']}']")
        line.locator("button", has_text="打开").click()
        page.wait_for_selector("#result:not([hidden]) .segment")
        assert page.locator("#no-audio").is_visible()  # the recording never was in this browser
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page is wider than the phone"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "phone-390.png", full_page=True)
        page.click("#ui-switch")
        assert page.locator("#transcribe").inner_text() == "Transcribe"
    finally:
        context.close()


@pytest.fixture
def small_limit_api(service_env: dict[str, str], tmp_path: Path) -> Iterator[Platform]:
    """An API of the same deployment that takes uploads of at most 100 kB (no workers needed)."""
    small = Platform(service_env | {"TINGXIE_MAX_UPLOAD_BYTES": "100000"}, tmp_path)
    small.launch("api", api_command("127.0.0.1", small.port))
    try:
        _wait_until(lambda: httpx.get(f"{small.url}/healthz").status_code == 200, what="the small-limit API")
        yield small
    finally:
        small.stop()


def test_a_file_over_the_limit_gets_the_413_message(page: Page, small_limit_api: Platform) -> None:
    _open(page, small_limit_api.url)
    page.set_input_files("#files", str(OSR))  # 569 kB
    page.click("#transcribe")
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "too large" in message.inner_text() and "100000 bytes" in message.inner_text()
    assert "too large" in page.locator("#active .job .status").inner_text()


def test_a_missing_key_is_asked_for_and_kept_in_the_browser(page: Page, platform: Platform, key_secret: str) -> None:
    page.goto(platform.url)
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "API key" in message.inner_text()
    page.click("#key-box summary")
    page.fill("#key-input", key_secret)
    page.click("#key-form button:not([type=button])")
    page.wait_for_function("document.querySelectorAll('#language option').length > 1")
    assert page.evaluate("localStorage.getItem('tingxie.key')") == key_secret
    page.reload()
    page.wait_for_function("document.querySelectorAll('#language option').length > 1")
    assert page.locator("#key-input").input_value() == key_secret


def test_a_failed_job_shows_its_error_code(page: Page, platform: Platform, tmp_path: Path) -> None:
    not_audio = tmp_path / "notes.wav"
    not_audio.write_bytes(b"these are meeting notes, not a recording\n" * 200)
    _open(page, platform.url)
    page.set_input_files("#files", str(not_audio))
    page.click("#transcribe")
    status = page.locator("#active .job .status.failed")
    status.wait_for(timeout=60_000)
    assert "invalid_audio" in status.inner_text()


def test_the_speaker_switch_asks_for_labels(page: Page, platform: Platform) -> None:
    """Shown because the workers can label speakers (`/v1/engines`), off as the server's default is, and
    when ticked the job is submitted with `diarize=true` and its segments come back with speakers."""
    assert httpx.get(f"{platform.url}/v1/engines").json()["diarization"] == {"available": True, "default": "off"}
    _open(page, platform.url)
    switch = page.locator("#diarize")
    assert page.locator("#diarize-option").is_visible() and not switch.is_checked()
    switch.check()
    page.set_input_files("#files", str(JFK))
    page.click("#transcribe")
    page.wait_for_selector("#result:not([hidden]) .segment", timeout=180_000)
    job_id = page.locator("#active .job").first.get_attribute("data-job")
    job = httpx.get(f"{platform.url}/v1/jobs/{job_id}").json()
    assert job["diarization"] == "done", job
    speakers = [segment["speaker"] for segment in job["segments"]]
    assert speakers and all(re.fullmatch(r"S\d+", speaker) for speaker in speakers), speakers
    assert page.locator("#segments .segment .speaker").first.inner_text() == f"[{speakers[0]}]"
