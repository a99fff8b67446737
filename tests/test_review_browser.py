"""The review page in a real browser (headless Chromium from Debian, driven by Selenium): open
the printed address with its token, then, through the cookie alone, filter, delete a false
region, draw a missing box, accept a row; then the decisions on disk and the re-rendered images."""

import io
import json
import os
import shutil
import threading

import datasets
import numpy as np
import pytest
from PIL import Image

from review_output import fresh_output
from u2s_datasets.review import apply_review
from u2s_datasets.review.decisions import REVIEW_FILE
from u2s_datasets.review.server import ReviewServer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and chromedriver are not installed (.ci/browser installs them: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1300,1000",
                 "--no-proxy-server"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as e:
        pytest.skip(f"Chromium cannot start here: {e.msg.splitlines()[0] if e.msg else e}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path):
    folder = fresh_output(tmp_path / "out")
    server = ReviewServer(folder, port=0, reviewer="nobody", os_user="reviewer-account")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, server
    server.shutdown()
    server.server_close()


def _cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, "article.card")


def _card(driver, row):
    return driver.find_element(By.CSS_SELECTOR, f"article.card[data-row='{row}']")


def _filter(driver, flagged):
    Select(driver.find_element(By.NAME, "flagged")).select_by_value(flagged)
    driver.find_element(By.ID, "apply-filters").click()
    WebDriverWait(driver, 10).until(lambda d: f"flagged={flagged}" in d.current_url and _images_loaded(d))


def _images_loaded(driver):
    return driver.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")


def _lines(folder):
    with open(os.path.join(folder, REVIEW_FILE)) as f:
        return [json.loads(line) for line in f]


def _rgb(value):
    return np.asarray(Image.open(io.BytesIO(value["bytes"])).convert("RGB"))


def test_review_in_a_browser_then_apply(browser, served):
    folder, server = served
    before = datasets.load_from_disk(folder).cast_column("safe_image", datasets.Image(decode=False))
    false_line = before[2]["privacy_regions"][-1]["box"]  # the last line the OCR found on the page: to be deleted
    root = server.url.split("?")[0]
    browser.get(root)  # without the token: refused, nothing shown
    assert "?token=" in browser.find_element(By.TAG_NAME, "body").text and not browser.find_elements(By.CSS_SELECTOR, "article.card")
    browser.get(server.url)
    WebDriverWait(browser, 10).until(_images_loaded)
    assert len(_cards(browser)) == 5
    assert browser.current_url == root  # the token went into the cookie, out of the address bar
    (cookie,) = browser.get_cookies()
    assert (cookie["value"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (server.access.token, True, "Strict", "/")
    reviewer = browser.find_element(By.ID, "reviewer")
    reviewer.clear()
    reviewer.send_keys("ada")

    # Flagged rows only: the two faces and the page.
    _filter(browser, "yes")
    assert sorted(int(c.get_attribute("data-row")) for c in _cards(browser)) == [0, 1, 2]

    # Delete the page's last text line as a false region.
    _card(browser, 2).find_element(By.CSS_SELECTOR, f"button.delete[data-box='{json.dumps(false_line)}']").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.card[data-row='2'] rect.region.deleted"))
    assert "1 of 5 rows reviewed" in browser.find_element(By.ID, "progress").text

    # Rows that were not flagged: draw a missing box on the coffee cup, accept the cat.
    _filter(browser, "no")
    assert sorted(int(c.get_attribute("data-row")) for c in _cards(browser)) == [3, 4]
    coffee = _card(browser, 3)
    Select(coffee.find_element(By.CSS_SELECTOR, "select.category")).select_by_value("private_belongings")
    canvas = coffee.find_element(By.CSS_SELECTOR, "svg.draw")
    width, height = canvas.size["width"], canvas.size["height"]
    # Selenium offsets are from the element's centre: drag from (40, 30) to (120, 90) of the shown image.
    (ActionChains(browser).move_to_element_with_offset(canvas, 40 - width // 2, 30 - height // 2).click_and_hold()
     .move_by_offset(40, 30).move_by_offset(40, 30).release().perform())
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.card[data-row='3'] rect.region.added"))
    _card(browser, 4).find_element(By.CSS_SELECTOR, "button.accept").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.card.accept[data-row='4']"))

    lines = _lines(folder)
    assert [(l["row"], l["action"], l["reviewer"]) for l in lines] == [(2, "delete_region", "ada"), (3, "add_region", "ada"), (4, "accept", "ada")]
    assert all(l["os_user"] == "reviewer-account" for l in lines)  # beside the self-declared name
    # Recorded at all: the page's own fetch sends Origin with every POST, which the server requires.
    assert all(l["time"].endswith("+00:00") for l in lines)
    assert lines[0]["box"] == false_line and lines[0]["category"] == "text_symbols"
    drawn = lines[1]["box"]
    natural = Image.open(io.BytesIO(before[3]["image"]["bytes"])).size
    scale = natural[0] / width  # image pixels per shown pixel
    assert lines[1]["category"] == "private_belongings"
    assert np.allclose(drawn, [40 * scale, 30 * scale, 120 * scale, 90 * scale], atol=2 * scale + 1), drawn

    summary = apply_review(folder)
    assert summary["rows_rerendered"] == 2
    after = datasets.load_from_disk(folder).cast_column("safe_image", datasets.Image(decode=False))
    for row in (0, 1, 4):  # not changed by the review: the very same bytes
        assert after[row]["safe_image"]["bytes"] == before[row]["safe_image"]["bytes"], row
    original_page, safe_page = _rgb(before[2]["image"]), _rgb(after[2]["safe_image"])
    x0, y0, x1, y1 = map(int, false_line)
    assert not np.array_equal(_rgb(before[2]["safe_image"])[y0:y1, x0:x1], original_page[y0:y1, x0:x1])
    assert np.array_equal(safe_page[y0:y1, x0:x1], original_page[y0:y1, x0:x1])  # the deleted line is back as it was
    assert not np.array_equal(safe_page[:100], original_page[:100])  # the other lines are still pixelated
    original_coffee, safe_coffee = _rgb(before[3]["image"]), _rgb(after[3]["safe_image"])
    x0, y0, x1, y1 = map(int, drawn)
    changed = np.argwhere(np.any(safe_coffee != original_coffee, axis=-1))
    assert len(changed) and changed[:, 1].min() >= x0 - 40 and changed[:, 1].max() <= x1 + 40  # inside the grown box only
    assert changed[:, 0].min() >= y0 - 40 and changed[:, 0].max() <= y1 + 40
    assert after[3]["is_private"] and after[3]["privacy_categories"] == ["private_belongings"]
