"""The report of `cvlab reproduce` (cvlab.reproduce.report): reproduction.json read back checked,
report.md and report.html agreeing with it, and report.html opened in a real headless Chromium
(driven over the Chrome DevTools Protocol): it loads without console errors, its figures
decode, its summary shows the record's counts, and it fetches nothing from the network.

Chromium comes from Debian's packages (scripts/install_chromium.sh, run by .ci/run as root);
without it the browser test skips, saying so.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from cvlab.records.files import RecordError
from cvlab.reproduce.report import (
    REPORT_HTML_NAME,
    REPORT_MD_NAME,
    REPRODUCTION_NAME,
    dump_reproduction,
    format_value,
    load_reproduction,
    tally,
    write_report,
)

SCRIPT = "<script>alert('x')</script>"
VERDICTS = ("held", "not_held", "not_run")


# ---- a reproduction record with two real figures ---------------------------------------

def draw_figure(path: Path, size: tuple[int, int], colour: str) -> None:
    """A small real PNG: a white canvas with a line and a box."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([(5, size[1] - 5), (size[0] - 5, 5)], fill=colour, width=3)
    draw.rectangle([(2, 2), (size[0] - 3, size[1] - 3)], outline="black")
    image.save(path)


def item(id: str, notebook: str, verdict: str, figure: str | None, **fields: Any) -> dict:
    """One item of the record, every key of format 1."""
    return {"id": id, "notebook": notebook, "section": fields.get("section", "a section"),
            "what": fields.get("what", f"the claim of {id}"), "course": fields.get("course", 0.5),
            "value": fields.get("value", 0.51234567), "rule": fields.get(
                "rule", {"kind": "close", "atol": 0.05}), "verdict": verdict,
            "detail": fields.get("detail", ""), "figure": figure, "runs": fields.get("runs", [])}


def make_reproduction(folder: Path) -> dict[str, Any]:
    """A record of two notebooks, five items (each verdict, a range, a text claim, an item
    whose text holds a <script>) and two PNG figures under folder/figures/."""
    draw_figure(folder / "figures" / "bn_deep.png", (160, 120), "blue")
    draw_figure(folder / "figures" / "dropout.png", (120, 90), "red")
    items = [
        item("batchnorm.forward.train_mean", "BatchNormalization", "held", None,
             course=0.0, value=1.2e-9, rule={"kind": "close", "atol": 1e-7}),
        item("batchnorm.deep.weight_scale", "BatchNormalization", "not_held",
             "figures/bn_deep.png", what=f"best val acc stays high {SCRIPT}",
             course="batchnorm is robust to the weight scale", value=[0.31, 0.12, 0.45],
             rule={"kind": "pattern", "name": "robust_best", "within": 0.05},
             detail="fell to 0.12 at scale 1e-3 | not | a table", runs=["3", "4"]),
        item("batchnorm.deep.train_acc", "BatchNormalization", "held", "figures/bn_deep.png",
             course=[0.4, 0.6], value=0.55, rule={"kind": "range"}),
        item("dropout.forward.mean", "Dropout", "held", "figures/dropout.png",
             course=[0.2, 0.3], value=0.24987654, rule={"kind": "range"}),
        item("dropout.regularization.val_gap", "Dropout", "not_run", None, value=None,
             rule={"kind": "threshold", "op": "<", "bound": 0.1},
             detail="profile quick: needs the full data"),
    ]
    notebooks = [{"name": name, "counts": tally([i for i in items if i["notebook"] == name]),
                  "wall_time_s": seconds}
                 for name, seconds in (("BatchNormalization", 312.4), ("Dropout", 40.06))]
    return {"format": 1, "command": "reproduce", "profile": "quick",
            "parts": ["batchnorm", "dropout"], "started": "2025-01-02T03:04:05",
            "wall_time_s": 352.5, "machine": {"cpu": "Test CPU", "cores": 2, "gpu": None,
                                              "python": "3.11.7", "numpy": "1.26.4"},
            "counts": tally(items), "notebooks": notebooks, "items": items}


@pytest.fixture
def reproduction(tmp_path: Path) -> dict[str, Any]:
    return make_reproduction(tmp_path)


# ---- reproduction.json -----------------------------------------------------------------

def test_round_trip(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    path = dump_reproduction(tmp_path, reproduction)
    assert path == tmp_path / REPRODUCTION_NAME
    assert load_reproduction(tmp_path) == reproduction
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _tampered(reproduction: dict[str, Any], change: str) -> str:
    """reproduction.json's text after one change (named by the test's parameter)."""
    data = json.loads(json.dumps(reproduction))
    if change == "format":
        data["format"] = 2
    elif change == "items":
        data["items"] = {"0": data["items"][0]}
    elif change == "verdict":
        data["items"][1]["verdict"] = "maybe"
    elif change == "counts":
        data["counts"]["held"] += 1
    elif change == "figure":
        data["items"][1]["figure"] = "../../etc/passwd.png"
    elif change == "foreign":
        data = {"format": 1, "jobs": []}
    return json.dumps(data)


@pytest.mark.parametrize("change, message", [
    ("format", r": format is 2, not 1 "),
    ("items", r": items is an object, not a list$"),
    ("verdict", r': items\[1\]\.verdict is "maybe", not one of held, not_held, not_run$'),
    ("counts", r": counts \{.*\} are not those of its items \{"),
    ("figure", r"items\[1\]\.figure '\.\./\.\./etc/passwd\.png' is not a path inside the "),
    ("foreign", r" is not a reproduction record \(it lacks command, profile, "),
])
def test_tampered_record_refused(tmp_path: Path, reproduction: dict[str, Any], change: str,
                                 message: str) -> None:
    (tmp_path / REPRODUCTION_NAME).write_text(_tampered(reproduction, change))
    with pytest.raises(RecordError) as raised:
        load_reproduction(tmp_path)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(str(tmp_path / REPRODUCTION_NAME))
    assert re.search(message, text), text


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot be read (Expecting property name"),
    ('{"format": NaN}', "cannot be read (NaN is not a JSON value)"),
    ("[1, 2]", "is not a reproduction record (a JSON object)"),
    ("[" * 100_000 + "]" * 100_000, "cannot be read"),
])
def test_unreadable_record_refused(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / REPRODUCTION_NAME).write_text(content)
    with pytest.raises(RecordError) as raised:
        load_reproduction(tmp_path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_missing_record(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="reproduction.json does not exist"):
        load_reproduction(tmp_path)


def test_dump_refuses_a_bad_record(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    reproduction["items"][0]["verdict"] = "passed"
    with pytest.raises(RecordError, match="not one of held"):
        dump_reproduction(tmp_path, reproduction)
    assert not (tmp_path / REPRODUCTION_NAME).exists()


# ---- report.md and report.html from the record -----------------------------------------

class PageParser(html.parser.HTMLParser):
    """What a test reads of report.html: tags, the attributes that load things, the summary's
    counts, the item ids and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.counts: dict[str, dict[str, int]] = {}
        self.items: list[str] = []
        self.row: str | None = None
        self.cell: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        self.links += [value or "" for key, value in attrs if key in ("src", "href", "srcset")]
        if tag == "tr" and attributes.get("id") == "summary-total":
            self.row = ""
        elif tag == "tr" and "data-notebook" in attributes:
            self.row = attributes["data-notebook"]
        if tag == "tr" and "data-item" in attributes:
            self.items.append(attributes["data-item"] or "")
        if tag == "td" and self.row is not None and "data-count" in attributes:
            self.cell = attributes["data-count"]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("tr", "table"):
            self.row = None
        if tag == "td":
            self.cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.row is not None and self.cell is not None:
            self.counts.setdefault(self.row, {})[self.cell] = int(data)


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


def expected_counts(reproduction: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The summary's counts as the record has them: "" is the total row."""
    return {"": reproduction["counts"],
            **{notebook["name"]: notebook["counts"] for notebook in reproduction["notebooks"]}}


def test_reports_agree_with_the_record(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    paths = write_report(tmp_path, reproduction)
    assert paths == [tmp_path / REPORT_MD_NAME, tmp_path / REPORT_HTML_NAME]
    page = parse_page((tmp_path / REPORT_HTML_NAME).read_text())
    assert page.counts == expected_counts(reproduction)
    assert page.items == [entry["id"] for entry in reproduction["items"]]
    markdown = (tmp_path / REPORT_MD_NAME).read_text()
    unescaped = markdown.replace("\\", "")
    total = reproduction["counts"]
    assert (f"| **total** | **{total['held']}** | **{total['not_held']}** | "
            f"**{total['not_run']}** |") in markdown
    for notebook in reproduction["notebooks"]:
        counts = notebook["counts"]
        assert (f"| {notebook['name']} | {counts['held']} | {counts['not_held']} | "
                f"{counts['not_run']} |") in markdown
    for entry in reproduction["items"]:
        assert entry["id"] in unescaped
    assert markdown.count("](figures/bn_deep.png)") == 1
    assert markdown.count("](figures/dropout.png)") == 1
    for shown in ("[0.4, 0.6]", "1.2e-09", "0.2499", "5 min 12 s", "40.1 s", "Test CPU"):
        assert shown in unescaped and shown in "".join(page.text), shown


def test_html_escapes_the_record(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    write_report(tmp_path, reproduction)
    text = (tmp_path / REPORT_HTML_NAME).read_text()
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "script" not in parse_page(text).tags
    assert SCRIPT in "".join(parse_page(text).text)  # shown as text
    markdown = (tmp_path / REPORT_MD_NAME).read_text()
    assert "<script" not in markdown.lower() and "&lt;script&gt;" in markdown


def test_html_is_self_contained(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    write_report(tmp_path, reproduction)
    page = parse_page((tmp_path / REPORT_HTML_NAME).read_text())
    assert page.tags.count("img") == 2
    assert page.links and all(link.startswith(("data:", "#")) for link in page.links), \
        page.links
    assert not {"script", "iframe", "object", "embed"} & set(page.tags)
    text = (tmp_path / REPORT_HTML_NAME).read_text()
    assert "http:" not in text and "https:" not in text and "url(" not in text


def test_report_is_deterministic(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    write_report(tmp_path, reproduction)
    first = [(tmp_path / name).read_bytes() for name in (REPORT_MD_NAME, REPORT_HTML_NAME)]
    write_report(tmp_path, json.loads(json.dumps(reproduction)))
    assert [(tmp_path / name).read_bytes() for name in (REPORT_MD_NAME, REPORT_HTML_NAME)] \
        == first


def test_missing_figure_is_named(tmp_path: Path, reproduction: dict[str, Any]) -> None:
    (tmp_path / "figures" / "dropout.png").unlink()
    write_report(tmp_path, reproduction)
    page = parse_page((tmp_path / REPORT_HTML_NAME).read_text())
    assert page.tags.count("img") == 1
    assert "figure not shown: figures/dropout.png cannot be read" in "".join(page.text)


def test_figure_linked_outside_is_not_embedded(tmp_path: Path,
                                               reproduction: dict[str, Any]) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-secret.png"
    outside.write_bytes(b"not for the report")
    (tmp_path / "figures" / "dropout.png").unlink()
    (tmp_path / "figures" / "dropout.png").symlink_to(outside)
    write_report(tmp_path, reproduction)
    text = (tmp_path / REPORT_HTML_NAME).read_text()
    assert "figure not shown: figures/dropout.png points outside the folder" in text
    assert parse_page(text).tags.count("img") == 1


@pytest.mark.parametrize("value, shown", [
    (None, "\u2014"), (0.123456789, "0.1235"), (1.5e-10, "1.5e-10"), (3, "3"),
    ([0.1, 0.25], "[0.1, 0.25]"), (True, "true"), ("a claim", "a claim"),
    (list(range(12)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \u2026 2 more]"),
])
def test_format_value(value: Any, shown: str) -> None:
    assert format_value(value) == shown


# ---- the real browser ------------------------------------------------------------------

def find_chromium() -> str | None:
    """Debian's chromium (or another Chromium build on PATH), None when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class DevTools:
    """A headless Chromium and one page of it, driven over the Chrome DevTools Protocol (a
    websocket to --remote-debugging-port; no driver, no browser download). Every event the
    page sends is kept in `events`."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--remote-debugging-port=0")

    def __init__(self, binary: str, profile: Path, timeout: float = 20.0) -> None:
        self.timeout = timeout
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, *self.FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.events: list[dict[str, Any]] = []
        self.next_id = 0
        self.socket = None
        try:
            self.socket = self._connect(profile)
        except BaseException:
            self.close()
            raise

    def _connect(self, profile: Path) -> Any:
        """The websocket of the browser's first page (DevToolsActivePort names the port),
        connected directly (never through a proxy that the environment names)."""
        import urllib.request

        import websocket

        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + self.timeout
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start (exit {self.process.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
        with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
            targets = json.load(answer)
        page = next(target for target in targets if target["type"] == "page")
        connected = socket.create_connection(("127.0.0.1", port), timeout=self.timeout)
        return websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout,
                                           suppress_origin=True, socket=connected)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer, keeping the events that come first."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        """Read events until one named `method` arrives (within the timeout)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            self.events.append(message)
            if message.get("method") == method:
                return message
        raise TimeoutError(f"no {method} within {self.timeout} s")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression[:60]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def close(self) -> None:
        """Close the websocket and end the browser (its whole process group)."""
        if self.socket is not None:
            self.socket.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def open_page(browser: DevTools, url: str) -> dict[str, Any]:
    """Load `url` with the network, console and log domains recording; what happened: the
    requested URLs and the console errors (console.error, uncaught exceptions, log errors such
    as a refused or failed load)."""
    browser.events.clear()
    for domain in ("Network", "Runtime", "Log", "Page"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    browser.evaluate("new Promise(done => setTimeout(done, 100))")  # late events arrive
    requested, errors = [], []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            requested.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(str(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            errors.append(str(params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
    return {"requested": requested, "errors": errors}


PAGE_FACTS = """(async () => {
  const images = [...document.images];
  const decoded = await Promise.all(images.map(image => image.decode().then(() => true,
                                                                            () => false)));
  const counts = {};
  for (const row of document.querySelectorAll("tr#summary-total, tr[data-notebook]")) {
    const key = row.id === "summary-total" ? "" : row.dataset.notebook;
    counts[key] = {};
    for (const cell of row.querySelectorAll("td[data-count]"))
      counts[key][cell.dataset.count] = Number(cell.textContent);
  }
  return {images: images.map((image, i) => ({width: image.naturalWidth,
                                             height: image.naturalHeight, decoded: decoded[i],
                                             data: image.src.startsWith("data:image/png")})),
          counts: counts, items: [...document.querySelectorAll("tr[data-item]")]
            .map(row => row.dataset.item),
          scripts: document.scripts.length, title: document.title};
})()"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One headless Chromium for the module; skips, saying why, without Chromium or the
    websocket-client package."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (scripts/install_chromium.sh installs it as "
                    "root: apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install "
                        "-e '.[test]')")
    browser = DevTools(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


def test_report_in_a_real_browser(tmp_path: Path, reproduction: dict[str, Any],
                                  browser: DevTools) -> None:
    write_report(tmp_path, reproduction)
    url = (tmp_path / REPORT_HTML_NAME).as_uri()
    seen = open_page(browser, url)
    assert seen["errors"] == []
    assert url in seen["requested"]  # the recording works: the page itself was requested
    assert all(requested == url or requested.startswith("data:")
               for requested in seen["requested"]), seen["requested"]
    facts = browser.evaluate(PAGE_FACTS)
    assert facts["images"] == [{"width": 160, "height": 120, "decoded": True, "data": True},
                               {"width": 120, "height": 90, "decoded": True, "data": True}]
    assert facts["counts"] == expected_counts(reproduction)
    assert facts["items"] == [entry["id"] for entry in reproduction["items"]]
    assert facts["scripts"] == 0 and facts["title"].startswith("cvlab reproduce")


def test_browser_records_what_a_page_fetches(tmp_path: Path, browser: DevTools) -> None:
    """The control for the test above: a page that loads a file beside it is seen doing so
    (and its failure is an error), so an empty record there means nothing was fetched."""
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>'
                    '<body><img src="absent.png"></body></html>')
    seen = open_page(browser, page.as_uri())
    assert (tmp_path / "absent.png").as_uri() in seen["requested"]
    assert seen["errors"]
