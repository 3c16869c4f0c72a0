"""Open a page in real headless Chromium (Debian packages chromium and chromium-driver, pip
selenium; `make system-deps` installs the first two) and report what it drew.

`open_page` loads a file, lets it run, saves a full-page screenshot (printed, for CI logs),
hovers the first hover mark, and returns the browser's console messages, every chart's
title and data (its series' point counts, its hover marks), and the hover box's text.
"""

import os
import shutil

CHROMEDRIVER = "/usr/bin/chromedriver"
MAX_HEIGHT = 12000  # px: a screenshot taller than this is cut (Chromium's own limits are near)

# Every chart: its title, how many series its builder counted, each line's point count (an
# SVG path "M x,y L x,y ..." has one more point per " L"), the hover marks it holds, and its bars
# per timeline lane (a bar's class lane-<name>: coordinator.tools.html_report's drain windows).
CHARTS_JS = """
return Array.from(document.querySelectorAll("svg.chart")).map((svg) => ({
  title: svg.getAttribute("aria-label"),
  series: Number(svg.dataset.series),
  paths: Array.from(svg.querySelectorAll("path.series")).map((p) => p.getAttribute("d").split(" L").length),
  tips: svg.querySelectorAll("[data-tip]").length,
  bars: svg.querySelectorAll("rect.bar").length,
  dots: svg.querySelectorAll("circle.pt").length,
  bands: svg.querySelectorAll("rect.band").length,
  lanes: Array.from(svg.querySelectorAll("rect.bar")).reduce((counts, bar) => {
    const lane = Array.from(bar.classList).find((c) => c.startsWith("lane-"));
    if (lane) counts[lane.slice(5)] = (counts[lane.slice(5)] || 0) + 1;
    return counts;
  }, {}),
}));
"""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not shutil.which("chromium") or not os.path.exists(CHROMEDRIVER):
        return "chromium and chromium-driver are not installed: run `make system-deps`"
    return None


def open_page(path: str, screenshot: str) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get("file://" + os.path.abspath(path))
        # the whole page in one screenshot: a viewport as tall as the page (the window adds its frame)
        height, frame = driver.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
        )
        target = min(height, MAX_HEIGHT)
        driver.set_window_size(1400, target + frame)
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return window.innerHeight") >= target)
        driver.save_screenshot(screenshot)
        print(f"screenshot of {path}: {screenshot}")
        charts = driver.execute_script(CHARTS_JS)
        marks = driver.find_elements(By.CSS_SELECTOR, "svg.chart [data-tip]")
        hover = ""
        if marks:
            ActionChains(driver).move_to_element(marks[0]).perform()
            hover = driver.find_element(By.ID, "tip").text
        return {
            "console": driver.get_log("browser"),
            "charts": charts,
            "hover": hover,
            "text": driver.find_element(By.TAG_NAME, "body").text,
            "title": driver.title,
        }
    finally:
        driver.quit()


def console_errors(page: dict) -> list[dict]:
    return [m for m in page["console"] if m.get("level") in ("SEVERE", "WARNING")]
