"""`rnnbench report --html`: one self-contained page, checked as text and in a real browser
(headless Chromium: every image decodes, sorting a column reorders the rows, and a screenshot is
saved for a person to look at)."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import invoke
from test_report import make_row, results  # noqa: F401 - `results`: a fixture (eurnn 3 seeds, lstm 2 ok + 1 failed)

from rnnbench import store

BROWSER = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
        if (path := shutil.which(name))
    ),
    None,
)
browser = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium (Debian: apt install chromium)"
)


def _report(folder, out, *args):
    result = invoke("report", "--results", str(folder), "--out", str(out), "--html", *args)
    assert result.exit_code == 0, result.output
    return out / "report.html"


def test_the_page_is_self_contained_and_shows_every_part(results, tmp_path):  # noqa: F811
    page = _report(results, tmp_path / "out")
    html = page.read_text(encoding="utf-8")
    # nothing fetched from anywhere: no external script, style, font or image
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert not re.search(r"<link\b", html)
    images = re.findall(r'<img src="([^"]+)"', html)
    pngs = sorted(p for p in (tmp_path / "out").glob("*.png"))
    assert len(images) == len(pngs) > 0 and all(
        src.startswith("data:image/png;base64,") for src in images
    )
    # the caption, the table and its bold, the runs with their status and error, the references
    assert "pmnist:data=sample (task version 2)" in html and 'class="best"' in html
    assert html.count('<table class="sortable results">') == 1
    assert (
        "Runs (6: 5 ok, 1 failed)" in html
    )  # (the failed run too, though the tables leave it out)
    assert '<tr class="failed">' in html and "lr=0.001" in html
    assert 'id="references"' in html and "@" in html.split('id="references"')[1]
    # the other outputs are still written
    for name in ("report.md", "pmnist_data=sample-v2-cpu.md", "pmnist_data=sample-v2-cpu.tex"):
        assert (tmp_path / "out" / name).exists(), name


def test_text_from_rows_is_escaped_never_markup(tmp_path):
    folder = tmp_path / "results"
    hostile = "<img src=x onerror=alert(1)>"
    for seed in (0, 1):
        store.append_run(folder, "pmnist", make_row("lstm", seed, 0.5), [])
    store.append_run(folder, "pmnist", make_row("lstm", 2, 0.5, status="failed", error=hostile), [])
    html = _report(folder, tmp_path / "out").read_text(encoding="utf-8")
    assert hostile not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_runs_of_a_task_with_no_ok_run_are_on_the_page_with_their_errors(results, tmp_path):  # noqa: F811
    failed = make_row(
        "gru",
        0,
        0.1,
        status="failed",
        error="RuntimeError: out of memory",
        task="copying",
        task_spec="copying",
    )
    store.append_run(results, "copying", failed, [])
    html = _report(results, tmp_path / "out").read_text(encoding="utf-8")
    other = html.split('id="s-other-runs"')[1]
    assert "Runs in no table" in other and "RuntimeError: out of memory" in other
    assert "Runs (1: 1 failed)" in other and '<details class="runs" open>' in other


def test_how_runs_were_logged_does_not_set_them_apart(tmp_path):
    folder = tmp_path / "results"
    for seed, log_every in ((0, 5), (1, 50)):
        store.append_run(
            folder, "pmnist", make_row("lstm", seed, 0.5, config={"log_every": log_every}), []
        )
    html = _report(folder, tmp_path / "out").read_text(encoding="utf-8")
    assert "log_every" not in html


def test_without_html_no_page_is_written(results, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    result = invoke("report", "--results", str(results), "--out", str(out))
    assert (
        result.exit_code == 0
        and (out / "report.md").exists()
        and not (out / "report.html").exists()
    )


# What the browser runs once the page has loaded: it reads the images, sorts the results table
# by its score column twice and writes what it saw into the page, which --dump-dom prints.
PROBE = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (image) {
    return {
      alt: image.alt, decoded: image.complete && image.naturalWidth > 0, width: image.naturalWidth
    };
  });
  var table = document.querySelector("table.results");
  var titles = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) {
    return th.textContent;
  });
  var column = titles.findIndex(function (title) { return title.indexOf("(%)") >= 0; });
  function read(c) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[c].textContent;
    });
  }
  var before = read(0);
  table.tHead.rows[0].cells[column].click();
  var ascending = {cells: read(0), scores: read(column)};
  table.tHead.rows[0].cells[column].click();
  var descending = {cells: read(0), scores: read(column),
                    sort: table.tHead.rows[0].cells[column].getAttribute("aria-sort")};
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(
    {images: images, before: before, ascending: ascending, descending: descending}
  );
  document.body.appendChild(out);
});
</script>
"""


def _chromium(*args, timeout=120):
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@browser
@pytest.mark.browser
def test_in_a_browser_every_image_decodes_and_sorting_reorders_rows(results, tmp_path):  # noqa: F811
    page = _report(results, tmp_path / "out")
    probed = tmp_path / "probed.html"  # (a copy with the probe: the page itself stays as written)
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    done = _chromium("--virtual-time-budget=20000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not run: {done.stderr[-2000:]}"
    seen = json.loads(
        found.group(1)
        .replace("&quot;", '"')
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )
    assert len(seen["images"]) == len(list((tmp_path / "out").glob("*.png")))
    assert all(image["decoded"] and image["width"] > 0 for image in seen["images"]), seen["images"]
    scores = lambda texts: [float(t.split("±")[0]) for t in texts]  # noqa: E731
    assert seen["before"] == ["eurnn", "lstm"]
    assert scores(seen["ascending"]["scores"]) == sorted(scores(seen["ascending"]["scores"]))
    assert (
        seen["descending"]["cells"] == ["lstm", "eurnn"]
        and seen["descending"]["sort"] == "descending"
    )
    assert scores(seen["descending"]["scores"]) == sorted(
        scores(seen["ascending"]["scores"]), reverse=True
    )


@browser
@pytest.mark.browser
def test_a_screenshot_of_the_page_is_saved_to_look_at(results, tmp_path):  # noqa: F811
    """The screenshot is for a person: RNNBENCH_SCREENSHOT=path.png keeps it there."""
    page = _report(results, tmp_path / "out")
    shot = Path(os.environ.get("RNNBENCH_SCREENSHOT") or tmp_path / "report.png")
    done = _chromium(
        f"--screenshot={shot}",
        "--window-size=1280,2600",
        "--virtual-time-budget=10000",
        page.as_uri(),
    )
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


RUNS_PROBE = """
<script>
window.addEventListener("load", function () {
  var table = document.querySelector("table.runs");
  var titles = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) {
    return th.textContent;
  });
  function read(c) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[c].textContent.trim();
    });
  }
  var seen = {};
  ["Differs", "Run", "Date"].forEach(function (title) {
    var column = titles.indexOf(title);
    table.tHead.rows[0].cells[column].click();
    seen[title] = read(column);
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>
"""


@browser
@pytest.mark.browser
def test_in_a_browser_settings_sort_by_value_and_ids_and_dates_as_text(tmp_path):
    folder = tmp_path / "results"
    for i, (lr, run_id) in enumerate(
        (
            (0.01, "1e3f00000001"),
            (0.1, "2a0000000002"),
            (0.003, "1e20000000aa"),
            (0.0003, "9b0000000003"),
        )
    ):
        row = make_row(
            "lstm",
            0,
            0.5,
            config={"lr": lr},
            run_id=run_id,
            run_key=f"k{i}",
            timestamp=f"2026-11-{30 - i:02d}T1{i}:00:00",
        )
        store.append_run(folder, "pmnist", row, [])
    page = _report(folder, tmp_path / "out")
    probed = tmp_path / "probed.html"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", RUNS_PROBE + "</body>"),
        encoding="utf-8",
    )
    done = _chromium("--virtual-time-budget=20000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not run: {done.stderr[-2000:]}"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["Differs"] == [
        "lr=0.0003",
        "lr=0.003",
        "lr=0.01",
        "lr=0.1",
    ]  # (as numbers, not as text)
    # ids as text (digit runs compared as numbers, as in names like eurnn-c4 < eurnn-c16); as
    # numbers they were 2a = 2, 9b = 9, 1e3f = 1000, 1e20 = 1e20
    assert seen["Run"] == ["1e3f00000001", "1e20000000aa", "2a0000000002", "9b0000000003"]
    assert seen["Date"] == sorted(seen["Date"]) and len(set(seen["Date"])) == 4
