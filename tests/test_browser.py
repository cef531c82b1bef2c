"""The course in a real browser: JupyterLab opens every student notebook, notebook 01 runs in the page, and the
bertviz attention view (notebook 06) draws its SVG, with the CDN libraries it loads served offline.

For the bertviz view only the cells it needs run (found by the names they define and read), so the test stays
well under the minutes the whole notebook takes.

Debian's Chromium (`/usr/bin/chromium`, installed by `.ci/run`) driven by Playwright; screenshots go to a temporary
directory whose paths are printed (`pytest -s tests/test_browser.py` shows them). JupyterLab serves a temporary copy
of notebooks/ and solutions/, so running cells never touches the repository.
"""

import json
import re
import shutil
import time
import urllib.request
import warnings
from pathlib import Path

import nbformat
import pytest

import browser_support

ROOT = Path(__file__).resolve().parent.parent
STUDENT_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
# A cell that displays a bertviz view: head_view(...) or model_view(...) without html_action="return".
BERTVIZ_VIEW = re.compile(r"^\s*(head_view|model_view)\s*\((?![^\n]*html_action)", re.MULTILINE)

MISSING = browser_support.chromium_missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

PAGE_TIMEOUT = 60_000  # ms for any one wait on the page
FIRST_OUTPUT_TIMEOUT = 120_000  # ms: the first cell imports torch and reads the data on a busy 2-core machine


def bertviz_cell(path: Path) -> int | None:
    """Index of the first code cell of a notebook that displays a bertviz view, or None."""
    cells = nbformat.read(path, as_version=4).cells
    return next((i for i, cell in enumerate(cells) if cell.cell_type == "code" and BERTVIZ_VIEW.search(cell.source)),
                None)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser-screenshots")
    print(f"\nbrowser screenshots: {directory}")
    return directory


def shoot(target, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a temporary copy of the course; yields (base URL, token, the copy's folder)."""
    home = tmp_path_factory.mktemp("jupyterlab")
    course = home / "course"
    for folder in ("notebooks", "solutions"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    with browser_support.jupyterlab(course, home) as (base, token):
        yield base, token, course


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium with a fresh profile; requests leaving the machine are refused, except cdnjs (served from npm)."""
    from playwright.sync_api import sync_playwright

    served: dict = {}  # CDN URL -> local file, filled by the `cdn` fixture
    log: list = []
    with sync_playwright() as playwright:
        context = browser_support.launch_chromium(playwright, tmp_path_factory.mktemp("chromium-profile"))
        context.set_default_timeout(PAGE_TIMEOUT)
        browser_support.route_offline(context, served, log)
        context.served, context.outside_requests, context.console = served, log, []
        context.on("console", lambda message: context.console.append(f"{message.type}: {message.text}"))
        yield context
        context.close()


@pytest.fixture(scope="module")
def cdn(browser):
    """The JavaScript libraries bertviz loads from cdnjs, fetched once from the npm registry into a cache."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: it fetches require.js, d3 and jQuery for bertviz's views")
    browser.served.update(browser_support.cdn_files())
    return browser.served


@pytest.fixture(scope="module")
def lab_page(browser, lab):
    """One JupyterLab page for the whole module (loading the app is the slow part), its file browser in notebooks/."""
    base, token, _ = lab
    page = browser.new_page()
    page.on("pageerror", lambda error: browser.console.append(f"page error: {error}"))
    page.goto(f"{base}/lab/tree/notebooks?token={token}&reset")
    page.locator(".jp-DirListing-item").first.wait_for()
    yield page
    page.close()


@pytest.fixture
def page(lab_page, lab):
    """The JupyterLab page; afterwards every document is closed (unsaved changes dropped) and every kernel stopped."""
    yield lab_page
    lab_page.evaluate("""() => {
        for (const widget of Array.from(window.jupyterapp.shell.widgets("main"))) {
            if (widget.context?.model) widget.context.model.dirty = false;
            widget.dispose();
        }
    }""")
    shut_down_kernels(*lab[:2])


def shut_down_kernels(base: str, token: str) -> None:
    """Stop every kernel the server runs, so notebooks opened one after another do not pile up in memory."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def open_notebook(page, lab, relative: str):
    """Open a notebook as a student would (double-click in the file browser; other folders through JupyterLab's
    open command), then wait until all its cells are shown and its kernel is ready."""
    from playwright.sync_api import expect

    folder, name = relative.split("/")
    if folder == "notebooks":
        page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=name)).dblclick()
    else:
        page.evaluate("(path) => void window.jupyterapp.commands.execute('docmanager:open', {path})", relative)
    page.locator(f".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel:text-is('{name}')").wait_for()
    cells = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")
    expect(cells).to_have_count(len(nbformat.read(lab[2] / relative, as_version=4).cells), timeout=PAGE_TIMEOUT)
    page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    page.wait_for_function(KERNEL_READY, timeout=FIRST_OUTPUT_TIMEOUT)  # a busy machine starts kernels slowly
    return cells


# The indicator says idle before the kernel's websocket is connected; a cell run before that is dropped.
KERNEL_READY = """() => {
    const kernel = window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel;
    return kernel?.connectionStatus === "connected" && kernel?.status === "idle";
}"""


def output_of(cells, index: int):
    return cells.nth(index).locator(".jp-OutputArea-output")


def test_cdn_libraries_load_from_npm_packages_in_a_tiny_page(browser, cdn, screenshots):
    """The machinery bertviz's views need offline: require.js, then d3 and jQuery through require, as bertviz does."""
    paths = {name: url[: -len(".js")] for url in cdn for name in ("d3", "jquery") if f"/{name}/" in url}
    [require_js] = [url for url in cdn if "/require.js/" in url]
    html = f"""<!doctype html><html><head><meta charset="utf-8"></head><body style="font-family: sans-serif">
<h1>bertviz's CDN libraries, answered from npm packages</h1><div id="view"></div>
<script src="{require_js}"></script>
<script>
require.config({{paths: {json.dumps(paths)}}});
requirejs(["jquery", "d3"], function ($, d3) {{
  const svg = d3.select("#view").append("svg").attr("width", 640).attr("height", 140);
  svg.selectAll("circle").data([30, 50, 70]).enter().append("circle")
     .attr("cx", (d, i) => 60 + i * 120).attr("cy", 60).attr("r", d => d / 2).attr("fill", "steelblue");
  svg.append("text").attr("x", 10).attr("y", 130)
     .text("d3 " + d3.version + " · jQuery " + $.fn.jquery + " · require.js " + requirejs.version);
  $("#view").attr("data-versions", JSON.stringify({{d3: d3.version, jquery: $.fn.jquery, require: requirejs.version}}));
}});
</script></body></html>"""
    page = browser.new_page()
    page.route("http://coursekit.test/**", lambda route: route.fulfill(body=html, content_type="text/html"))
    try:
        page.goto("http://coursekit.test/bertviz-cdn.html")
        page.locator("#view[data-versions] svg circle").first.wait_for()
        versions = json.loads(page.locator("#view").get_attribute("data-versions"))
        assert versions["d3"] == "5.7.0" and versions["require"] == "2.3.6"
        assert versions["jquery"].startswith("2.0."), versions
        assert page.locator("#view svg circle").count() == 3
        assert set(cdn) <= set(browser.outside_requests), "every library must have come through the CDN route"
        shoot(page, screenshots, "cdn-libraries")
    finally:
        page.close()


def test_cdn_table_covers_every_url_bertviz_loads():
    urls = browser_support.bertviz_cdn_urls()
    if urls is None:
        pytest.skip("bertviz is not installed: nothing to compare the CDN table with")
    missing = sorted(urls - set(browser_support.CDN_FILES))
    assert not missing, f"bertviz loads {missing}: add them to browser_support.CDN_FILES with an npm package"


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[path.name for path in STUDENT_NOTEBOOKS])
def test_student_notebook_opens_in_jupyterlab(page, lab, screenshots, path):
    notebook = nbformat.read(lab[2] / "notebooks" / path.name, as_version=4)  # the copy JupyterLab serves
    open_notebook(page, lab, f"notebooks/{path.name}")  # waits for every cell of the notebook
    title = next(line for cell in notebook.cells if cell.cell_type == "markdown"
                 for line in cell.source.splitlines() if line.startswith("# "))
    heading = page.locator(".jp-NotebookPanel:visible .jp-RenderedMarkdown h1").first
    heading.wait_for()
    assert heading.inner_text().replace("¶", "").strip() == title[2:].strip()
    shoot(page, screenshots, f"open-{path.stem}")


def test_notebook_01_runs_its_first_cells_in_the_page(page, lab, screenshots):
    """Shift+Enter from the set-up cell on: the data loads and prints, then the first exercise asks for code."""
    cells = open_notebook(page, lab, "notebooks/01_tokenization.ipynb")
    notebook = nbformat.read(lab[2] / "notebooks" / "01_tokenization.ipynb", as_version=4)
    printing = next(i for i, cell in enumerate(notebook.cells) if "characters of Shakespeare" in cell.source)
    exercise = next(i for i, cell in enumerate(notebook.cells) if cell.metadata.get("coursekit"))
    from playwright.sync_api import expect

    cells.nth(1).locator(".jp-InputPrompt").click()  # the Colab set-up cell, in command mode
    expect(cells.nth(1)).to_have_class(re.compile(r"\bjp-mod-active\b"), timeout=PAGE_TIMEOUT)
    for index in range(1, exercise + 1):
        page.keyboard.press("Shift+Enter")  # run this cell, go to the next one
        expect(cells.nth(index + 1)).to_have_class(re.compile(r"\bjp-mod-active\b"), timeout=PAGE_TIMEOUT)
    printed = output_of(cells, printing).filter(has_text="characters of Shakespeare")
    printed.wait_for(timeout=FIRST_OUTPUT_TIMEOUT)
    assert printed.inner_text().startswith("1,115,394 characters of Shakespeare. It begins:")
    error = output_of(cells, exercise).filter(has_text="NotImplementedError")
    error.wait_for()
    code_cells_run = sum(cell.cell_type == "code" for cell in notebook.cells[1 : exercise + 1])
    # The prompt turns from [*] to its number when the kernel's reply comes, a moment after the error is shown.
    expect(cells.nth(exercise).locator(".jp-InputPrompt")).to_have_text(f"[{code_cells_run}]:", timeout=PAGE_TIMEOUT)
    cells.nth(printing).scroll_into_view_if_needed()
    shoot(page, screenshots, "01-first-cells-run")
    cells.nth(exercise).scroll_into_view_if_needed()
    shoot(page, screenshots, "01-first-exercise")


def test_bertviz_view_draws_its_svg_in_the_page(page, lab, cdn, screenshots):
    from playwright.sync_api import expect

    found = [(path, bertviz_cell(path)) for path in SOLUTIONS]
    found = [(path, index) for path, index in found if index is not None]
    if not found:
        pytest.skip("no solution notebook calls bertviz yet (notebook 06 will); the offline CDN it needs is "
                    "tested by test_cdn_libraries_load_from_npm_packages_in_a_tiny_page")
    path, index = found[0]
    notebook = nbformat.read(lab[2] / "solutions" / path.name, as_version=4)
    run = browser_support.cells_needed([cell.source if cell.cell_type == "code" else "" for cell in notebook.cells],
                                       index)
    print(f"{path.name}: running cells {run} in the page (the bertviz view is cell {index})")
    cells = open_notebook(page, lab, f"solutions/{path.name}")
    # Run the view's cell, and the cells it needs, in the page: saved output would not run (untrusted notebook).
    page.evaluate(RUN_CELLS, run)
    prompt = cells.nth(index).locator(".jp-InputPrompt")
    expect(prompt).to_have_text(re.compile(r"\[\d+\]:"), timeout=180_000)  # the view's cell has run
    view = output_of(cells, index).locator("svg")
    try:
        view.first.wait_for(timeout=15_000)
    except Exception:
        if page.evaluate("() => typeof window.requirejs") != "function":
            fail_without_view(page, cells, run, index, path)
        # bertviz displays <script src=require.min.js> and then its JavaScript, which JupyterLab runs at once,
        # while the browser still loads require.js: the first view of a session can stay empty ("Layer:" only).
        warnings.warn(f"{path.name}, cell {index}: bertviz's first view stayed empty because its JavaScript ran "
                      f"before require.js had loaded; a student sees an empty view until they re-run the cell. "
                      f"Fix in the notebook: load require.js in an earlier cell. Re-running the cell.")
        page.evaluate(RUN_CELLS, [index])
        try:
            view.first.wait_for(timeout=60_000)
        except Exception:
            fail_without_view(page, cells, run, index, path)
    output_of(cells, index).locator("svg text").first.wait_for()  # the tokens are drawn
    served = [url for url in page.context.outside_requests if url.startswith(browser_support.CDN)]
    assert served, "the view drew without loading its libraries from the (routed) CDN?"
    cells.nth(index).scroll_into_view_if_needed()
    shoot(page, screenshots, f"bertviz-{path.stem}")


RUN_CELLS = """(indices) => void (async () => {
    const app = window.jupyterapp;
    for (const index of indices) {
        app.shell.currentWidget.content.activeCellIndex = index;
        await app.commands.execute("notebook:run-cell");
    }
})()"""


def fail_without_view(page, cells, run, index, path):
    outputs = {i: output_of(cells, i).all_inner_texts() for i in run}
    pytest.fail(f"no bertviz SVG in cell {index} of {path.name}; outputs of the cells run: {outputs}; requests "
                f"leaving the machine: {sorted(set(page.context.outside_requests))}; "
                f"console: {page.context.console[-15:]}")


EXPLORER_NOTEBOOK = [
    "import torch\n"
    "from coursekit import explorer\n"
    "\n"
    "logits = torch.linspace(4.0, -4.0, 40)  # a made-up model: 40 tokens, the first the most likely\n"
    "demo = explorer.SamplingExplorer(lambda prompt: logits, lambda token: f'tok{token}', explorer.coursekit_functions())\n"
    "demo",
    "import hashlib\n"
    "# the chart the kernel draws for the values the sliders hold now, to compare with the one on screen\n"
    "print('settings', *demo.settings(), 'chart', hashlib.sha256(demo.chart_png(demo.prompt.value, *demo.settings())).hexdigest())",
]
# The SHA-256 of the picture the explorer's image widget shows (its src is a blob: URL of the PNG bytes).
CHART_ON_SCREEN = """async () => {
    const image = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) .widget-image");
    if (!image?.src) return null;
    const digest = await crypto.subtle.digest("SHA-256", await (await fetch(image.src)).arrayBuffer());
    return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}"""


def wait_for_chart(page, accept, timeout_ms: int = PAGE_TIMEOUT) -> str:
    """The SHA-256 of the chart on screen, once accept(it) holds; polled from here, since the page's
    wait_for_function does not await an async predicate."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        shown = page.evaluate(CHART_ON_SCREEN)  # evaluate awaits the digest
        if shown is not None and accept(shown):
            return shown
        if time.monotonic() > deadline:
            pytest.fail(f"the explorer's chart on screen (SHA-256 {shown}) never became the expected one")
        page.wait_for_timeout(200)


def kernel_chart(page, cells) -> list[str]:
    """Run the explorer notebook's second cell; its printed words: settings, temperature, top-k, top-p, chart, hash."""
    from playwright.sync_api import expect

    prompt = cells.nth(1).locator(".jp-InputPrompt")
    before = prompt.inner_text()
    page.evaluate(RUN_CELLS, [1])
    expect(prompt).not_to_have_text(before, timeout=PAGE_TIMEOUT)
    expect(prompt).to_have_text(re.compile(r"\[\d+\]:"), timeout=PAGE_TIMEOUT)  # this run has finished
    printed = output_of(cells, 1).filter(has_text="chart")
    printed.wait_for(timeout=PAGE_TIMEOUT)
    return printed.inner_text().split()


def test_sampling_explorer_redraws_when_a_slider_moves(page, lab, screenshots):
    """Notebook 05's explorer in JupyterLab: dragging the temperature slider changes the summary, and the chart on
    screen is the one the kernel draws for the slider's final value (not one redraw behind)."""
    from playwright.sync_api import expect

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in EXPLORER_NOTEBOOK],
                                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})  # no kernel dialog
    nbformat.write(notebook, lab[2] / "solutions" / "explorer_demo.ipynb")
    cells = open_notebook(page, lab, "solutions/explorer_demo.ipynb")
    page.evaluate(RUN_CELLS, [0])
    output = output_of(cells, 0)
    summary = output.locator(".widget-html-content", has_text="entropy")
    summary.wait_for(timeout=FIRST_OUTPUT_TIMEOUT)
    output.locator(".widget-image").wait_for()
    before_text, before_chart = summary.inner_text(), wait_for_chart(page, lambda shown: True)
    assert "40 of 40 tokens kept" in before_text
    shoot(cells.nth(0), screenshots, "05-explorer-before")

    slider = output.locator(".widget-slider", has=page.locator("label", has_text="temperature"))
    handle = slider.locator(".noUi-handle")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 150, box["y"] + box["height"] / 2, steps=5)  # towards low temperatures: sharper
    page.mouse.up()
    readout = slider.locator(".widget-readout")
    expect(readout).not_to_have_text("1.00")
    expect(summary).not_to_have_text(before_text, timeout=PAGE_TIMEOUT)
    after_text = summary.inner_text()
    entropy = lambda text: float(re.search(r"entropy of the sampled distribution ([\d.]+)", text).group(1))  # noqa: E731
    assert entropy(after_text) < entropy(before_text), (before_text, after_text)

    # The page sends a dragged slider's values one message at a time (it waits for the kernel between them), so the
    # kernel can get the final value after a cell run that was asked for later: ask until it has it.
    deadline = time.monotonic() + PAGE_TIMEOUT / 1000
    while True:
        _, temperature, top_k, top_p, _, expected_chart = kernel_chart(page, cells)
        if float(temperature) == pytest.approx(float(readout.inner_text())) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    assert float(temperature) == pytest.approx(float(readout.inner_text())), "the kernel never got the slider's value"
    assert (top_k, top_p) == ("None", "None")
    assert expected_chart != before_chart, "a lower temperature draws a different chart"
    wait_for_chart(page, lambda shown: shown == expected_chart)  # the chart on screen is the final value's
    shoot(cells.nth(0), screenshots, "05-explorer-after")
