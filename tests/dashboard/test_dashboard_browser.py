"""The dashboard in real headless Chromium (Debian's, driven by Playwright): each page loads against a messy
store of runs and artifacts made by the real tools, skips and names what it cannot read, responds to the
controls, renders model output as bounded text, stays offline. Every page visited is kept as a screenshot
(see `shots_dir` in conftest.py)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from workbench.analysis.compare import compare_runs

pytestmark = pytest.mark.slow
TIMEOUT = 30_000


def _open(page, url: str, root: str) -> None:
    page.goto(url)
    page.locator(f"#{root}").wait_for(timeout=TIMEOUT)


def _pick(page, dropdown: str, option: str) -> None:
    """Choose an option of a Dash 4 dropdown (a button that opens a list of .dash-dropdown-option)."""
    page.locator(f"#{dropdown}").click()
    page.locator(".dash-dropdown-option", has_text=option).first.click()
    page.keyboard.press("Escape")


def _clean(page, name: str) -> None:
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=True)
    assert page.errors == [], page.errors
    assert page.foreign == [], f"requests left the app: {page.foreign}"
    _bounded(page)


def _bounded(page, max_height: int = 8000) -> None:
    """The page is no wider than the window and not absurdly tall."""
    width, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert width <= page.viewport_size["width"], f"page is {width} px wide"
    assert height <= max_height, f"page is {height} px tall"


def _truncated(page, selector: str) -> list[str]:
    """Texts of the elements matching `selector` that are cut off (ellipsis) in their box."""
    return page.evaluate("""sel => [...document.querySelectorAll(sel)]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)""", selector)


def test_leaderboard_filter_select_and_compare(page, server_url, dash_app, dash_env):
    from playwright.sync_api import expect

    _open(page, server_url + "/", "page-leaderboard")
    rows = page.locator("#lb-grid .ag-center-cols-container .ag-row")
    expect(rows).to_have_count(len(dash_env.good_runs), timeout=TIMEOUT)
    model_b = dash_app.workbench_data.run("run-b").manifest["model"]["spec"]
    _pick(page, "lb-model", model_b)
    expect(rows).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator('#lb-grid .ag-center-cols-container .ag-row[row-id="run-b"]')).to_have_count(1)
    page.reload()
    page.locator("#page-leaderboard").wait_for(timeout=TIMEOUT)
    expect(rows).to_have_count(len(dash_env.good_runs), timeout=TIMEOUT)
    for rid in ("run-a", "run-b"):
        page.locator(f'#lb-grid .ag-pinned-left-cols-container .ag-row[row-id="{rid}"] .ag-checkbox-input').click()
    link = page.locator("#lb-compare-link")
    expect(link).to_contain_text("Compare 2 runs (baseline run-a)", timeout=TIMEOUT)
    expect(page.locator("#lb-plot .scatterlayer .trace")).to_have_count(2, timeout=TIMEOUT)
    _clean(page, "leaderboard")
    link.click()
    page.locator("#page-compare").wait_for(timeout=TIMEOUT)
    assert page.url.endswith("/compare?runs=run-a,run-b")
    c = compare_runs([dash_app.workbench_data.run(r) for r in ("run-a", "run-b")], n_boot=100)
    expect(page.locator("#cmp-grid .ag-center-cols-container .ag-row")).to_have_count(
        sum(p.primary for p in c.paired), timeout=TIMEOUT)
    expect(page.locator("#cmp-forest .scatterlayer .trace")).to_have_count(1, timeout=TIMEOUT)
    page.locator("#cmp-flips").scroll_into_view_if_needed()
    expect(page.locator("#cmp-flips .ag-center-cols-container .ag-row")).to_have_count(len(c.flips), timeout=TIMEOUT)
    expect(page.locator("h3", has_text="Flipped items")).to_have_text(f"Flipped items ({len(c.flips)})")
    _clean(page, "compare")


def test_leaderboard_on_a_messy_store(page, server_url, dash_app, dash_env):
    """Stray folder, stray file and a truncated metrics.json: named in a note; every good run still listed, with
    short labels, the tick boxes first, metric and direction in the header, numbers formatted, and a plot."""
    from playwright.sync_api import expect

    _open(page, server_url + "/", "page-leaderboard")
    note = page.locator("#lb-unreadable")
    expect(note).to_contain_text("Could not read 3 runs", timeout=TIMEOUT)
    for name in dash_env.stray:
        expect(note).to_contain_text(name)
    expect(note).to_contain_text("metrics.json")
    expect(page.locator("#lb-grid .ag-center-cols-container .ag-row")).to_have_count(len(dash_env.good_runs),
                                                                                       timeout=TIMEOUT)
    first = page.locator("#lb-grid .ag-pinned-left-header .ag-header-cell").first
    assert first.get_attribute("col-id") == "ag-Grid-SelectionColumn"
    expect(page.locator("#lb-grid .ag-header-cell-text", has_text="xstest · over_refusal ↓")).to_have_count(1)
    cell = page.locator('#lb-grid .ag-row[row-id="run-a"] .ag-cell[col-id="s1"]')
    e = dash_app.workbench_data.run("run-a").metrics["tasks"]["arc_easy"]["acc"]
    expect(cell).to_have_text(f"{e['value']:.3f} [{e['ci95_low']:.3f}, {e['ci95_high']:.3f}]")
    label = page.locator('#lb-grid .ag-pinned-left-cols-container .ag-row[row-id="run-a"] .ag-cell[col-id="label"]')
    expect(label).to_contain_text(" · hf · ")
    assert _truncated(page, "#lb-grid .ag-header-cell-text") == []
    expect(page.locator("#lb-plot .scatterlayer .trace")).to_have_count(len(dash_env.good_runs), timeout=TIMEOUT)
    _clean(page, "leaderboard-messy-store")


def test_compare_page_is_readable_and_flips_open_in_the_explorer(page, server_url, dash_app):
    from playwright.sync_api import expect

    _open(page, f"{server_url}/compare?runs=run-a,run-b,run-xss", "page-compare")
    forest = page.locator("#cmp-forest")
    expect(forest.locator(".scatterlayer .trace")).to_have_count(2, timeout=TIMEOUT)
    expect(forest.locator(".legend .traces")).to_have_count(2)
    colours = {forest.locator(".scatterlayer .trace").nth(i).locator(".point").first.evaluate(
        "e => getComputedStyle(e).stroke") for i in range(2)}
    assert len(colours) == 2, colours
    expect(page.locator("#cmp-grid .ag-header-cell-text", has_text="Δ (candidate − baseline)")).to_have_count(1)
    page.screenshot(path=str(page.shots / "compare-three-runs.png"), full_page=True)
    assert _truncated(page, "#cmp-grid .ag-header-cell-text") == []
    assert _truncated(page, '#cmp-grid .ag-cell[col-id="scope"], #cmp-grid .ag-cell[col-id="candidate_label"], '
                            '#cmp-grid .ag-cell[col-id="ci95_low"]') == []
    _clean(page, "compare-three-runs")
    page.locator("#cmp-flips").scroll_into_view_if_needed()
    link = page.locator("#cmp-flips a.grid-link").first
    href = link.get_attribute("href")
    link.click()
    page.locator("#page-samples").wait_for(timeout=TIMEOUT)
    key = href.split("sample=")[1].replace("%23", "#")
    expect(page.locator("#detail-title")).to_have_text(key.replace("#", " #"), timeout=TIMEOUT)
    expect(page.locator("#detail-baseline")).to_contain_text("Baseline", timeout=TIMEOUT)
    _clean(page, "compare-flip-opened")


def test_safety_task_by_its_own_metric(page, server_url, dash_env):
    """XSTest's over_refusal (lower is better): no "correct" column verdicts, the metric and arrow on each row,
    the baseline's answer beside the run's, the generation shown once."""
    from playwright.sync_api import expect

    _open(page, f"{server_url}/compare?runs=run-safe-a,run-safe-b", "page-compare")
    expect(page.locator("#cmp-grid .ag-cell", has_text="over_refusal ↓").first).to_be_visible(timeout=TIMEOUT)
    _clean(page, "compare-safety")
    _open(page, f"{server_url}/samples/run-safe-b?baseline=run-safe-a", "page-samples")
    for label in ("Task", "Correctness", "Baseline run (for flips and its answers)", "Flip against the baseline"):
        expect(page.locator("#page-samples label", has_text=label)).to_have_count(1)
    grid = page.locator("#se-grid")
    expect(grid.locator('.ag-header-cell[col-id="baseline_answer"]')).to_have_count(1, timeout=TIMEOUT)
    correct = grid.locator('.ag-center-cols-container .ag-cell[col-id="correct"]')
    expect(correct.first).to_have_text("–", timeout=TIMEOUT)
    assert set(correct.all_inner_texts()) == {"–"}
    assert set(grid.locator('.ag-center-cols-container .ag-cell[col-id="metric"]').all_inner_texts()) == {"over_refusal ↓"}
    grid.locator('.ag-center-cols-container .ag-row[row-index="0"] .ag-cell').first.click()
    expect(page.locator("#detail-baseline")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#detail-generation")).to_have_count(1)
    expect(page.locator("#baseline-generation")).to_have_count(1)
    expect(page.locator("#detail-answer")).to_have_count(0)
    _clean(page, "samples-safety-with-baseline")


def test_long_answers_are_clipped_and_bidi_is_neutralised(page, server_url, dash_env):
    from playwright.sync_api import expect

    for name, n in (("long", len(dash_env.long_answer)), ("tall", len(dash_env.tall_answer))):
        _open(page, f"{server_url}/samples/run-xss?sample={quote(dash_env.hostile[name])}", "page-samples")
        expect(page.locator("#detail-generation-more")).to_contain_text(f"{n:,} characters", timeout=TIMEOUT)
        _clean(page, f"samples-{name}-answer")
        page.locator("#detail-generation-more").click()
        expect(page.locator("#detail-generation-full")).to_be_visible()
        assert len(page.locator("#detail-generation-full").text_content()) == n
        _bounded(page)
        page.screenshot(path=str(page.shots / f"samples-{name}-answer-show-all.png"), full_page=True)
    _open(page, f"{server_url}/samples/run-xss?sample={quote(dash_env.hostile['bidi'])}", "page-samples")
    cell = page.locator(f'#se-grid .ag-row[row-id="{dash_env.hostile["bidi"]}"] .ag-cell[col-id="answer"]')
    expect(cell).to_have_text("Invoice \\u202egpj.exe\\u202c done", timeout=TIMEOUT)
    expect(page.locator("#detail-generation")).to_have_text("Invoice \\u202egpj.exe\\u202c done")
    assert "\u202e" not in page.locator("#page").inner_text()
    _clean(page, "samples-bidi")


def test_artifacts_page_on_a_messy_root(page, server_url, dash_env):
    from playwright.sync_api import expect

    _open(page, f"{server_url}/artifacts", "page-artifacts")
    note = page.locator("#artifacts-unreadable")
    expect(note).to_contain_text("Could not read 2 artifacts", timeout=TIMEOUT)
    for name in dash_env.bad_artifacts:
        expect(note).to_contain_text(name)
    expect(page.locator("#artifact-table tbody tr")).to_have_count(len(dash_env.ids) + 1)
    expect(page.locator("#artifact-table")).to_contain_text(dash_env.odd_artifact)
    _clean(page, "artifacts")


def test_sample_explorer_filter_and_open_a_sample(page, server_url, dash_app, dash_env):
    from playwright.sync_api import expect

    data = dash_app.workbench_data
    n = len(data.samples("run-b"))
    flips = compare_runs([data.run("run-a"), data.run("run-b")], n_boot=100).flips
    _open(page, f"{server_url}/samples/run-b?baseline=run-a", "page-samples")
    status = page.locator("#se-status")
    expect(status).to_have_text(f"{n} of {n} samples.", timeout=TIMEOUT)
    _pick(page, "se-flip", "changed")
    expect(status).to_have_text(f"{len(flips)} of {n} samples.", timeout=TIMEOUT)
    _pick(page, "se-flip", "right→wrong")
    rw = int((flips.direction == "right→wrong").sum())
    expect(status).to_have_text(f"{rw} of {n} samples.", timeout=TIMEOUT)
    _pick(page, "se-flip", "all")
    _pick(page, "se-task", "arc_easy")
    n_arc = int((data.samples("run-b").task == "arc_easy").sum())
    expect(status).to_have_text(f"{n_arc} of {n} samples.", timeout=TIMEOUT)
    first = page.locator('#se-grid .ag-center-cols-container .ag-row[row-index="0"][row-id^="arc_easy#"]')
    key = first.get_attribute("row-id")
    first.locator(".ag-cell").first.click()
    prompt = data.samples("run-b").set_index(["task", "doc_id"]).loc[("arc_easy", int(key.split("#")[1])), "prompt"]
    expect(page.locator("#detail-title")).to_have_text(f"arc_easy #{key.split('#')[1]}", timeout=TIMEOUT)
    assert page.locator("#detail-prompt").inner_text() == prompt
    expect(page.locator("#detail-choices tbody tr")).to_have_count(
        len(data.samples("run-b").set_index(["task", "doc_id"]).loc[("arc_easy", int(key.split("#")[1])), "choices"]))
    _clean(page, "samples")


def test_sample_panel_links_its_artifacts(page, server_url, dash_env):
    from playwright.sync_api import expect

    _open(page, f"{server_url}/samples/run-a?sample={quote(dash_env.linked_key)}", "page-samples")
    links = page.locator("#detail-artifacts a")
    expect(links).to_have_count(2, timeout=TIMEOUT)
    page.locator("#detail-artifacts a", has_text="attention").click()
    page.locator("#page-artifact-attention").wait_for(timeout=TIMEOUT)
    expect(page.locator("#artifact-source-link")).to_contain_text(dash_env.linked_key.replace("#", " #"))
    _clean(page, "sample-to-artifact")


def test_attention_view_switches_layer_and_head(page, server_url, dash_env):
    from playwright.sync_api import expect

    from workbench.interp import artifacts

    r = artifacts.load(dash_env.ids["attention"], dash_env.artifacts)
    _open(page, f"{server_url}/artifacts/{dash_env.ids['attention']}", "page-artifact-attention")
    title = page.locator("#attn-pattern .gtitle")
    expect(title).to_have_text(f"Attention pattern · layer {r.layers[0]} head 0", timeout=TIMEOUT)
    _pick(page, "attn-layer", f"layer {r.layers[-1]}")
    expect(title).to_have_text(f"Attention pattern · layer {r.layers[-1]} head 0", timeout=TIMEOUT)
    _pick(page, "attn-head", f"head {r.patterns.shape[1] - 1}")
    expect(title).to_have_text(f"Attention pattern · layer {r.layers[-1]} head {r.patterns.shape[1] - 1}",
                               timeout=TIMEOUT)
    page.locator("#attn-score label", has_text="previous_token").click()
    expect(page.locator("#attn-overview .gtitle")).to_have_text("Head scores: previous_token", timeout=TIMEOUT)
    _clean(page, "attention")


@pytest.mark.parametrize("kind", ["patching", "probe", "attribution", "logit_lens", "drift", "trace", "circuit"])
def test_artifact_views_render(page, server_url, dash_env, kind):
    from playwright.sync_api import expect

    _open(page, f"{server_url}/artifacts/{dash_env.ids[kind]}", f"page-artifact-{kind}")
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=TIMEOUT)
    if kind == "attribution":
        expect(page.locator("#attr-ig .tok")).to_have_count(len(dash_env and __import__(
            "workbench.interp.artifacts", fromlist=["load"]).load(dash_env.ids[kind], dash_env.artifacts).ig))
    if kind == "logit_lens":
        expect(page.locator("#lens-table-0 tbody tr").first).to_be_visible(timeout=TIMEOUT)
        expect(page.locator("#lens-target .scatterlayer .trace").first).to_be_visible(timeout=TIMEOUT)
        assert page.locator("table.lens td.target").count() > 0
        assert page.evaluate("window.__xss") is None
    if kind == "patching":
        expect(page.locator("#patch-note")).to_contain_text("normalised recovery")
    _clean(page, kind)


def test_model_output_with_html_is_shown_as_text(page, server_url, dash_app, dash_env):
    from playwright.sync_api import expect

    df = dash_app.workbench_data.samples("run-xss")
    key = f"{df.task[0]}#{df.doc_id[0]}"
    _open(page, f"{server_url}/samples/run-xss?sample={quote(key)}", "page-samples")
    expect(page.locator("#detail-prompt")).to_contain_text(dash_env.xss, timeout=TIMEOUT)
    expect(page.locator("#detail-generation")).to_have_text(f"Sure: {dash_env.xss} done")
    expect(page.locator("#se-grid")).to_contain_text("Sure: <script>window.__xss=1</script>", timeout=TIMEOUT)
    page.wait_for_timeout(500)
    assert page.evaluate("window.__xss") is None, "model output was executed"
    assert page.locator("#page img").count() == 0 and page.locator("#page script").count() == 0
    _clean(page, "xss")


def test_bad_ids_in_the_url_show_an_error(page, server_url):
    from playwright.sync_api import expect

    for path, msg in (("/samples/..%2F..%2Fetc", "invalid run id"), ("/artifacts/..%2Fx", "invalid artifact id"),
                      ("/samples/run-zzz", "no run run-zzz")):
        page.goto(server_url + path)
        expect(page.locator("#page-error")).to_contain_text(msg, timeout=TIMEOUT)
    _clean(page, "bad-ids")


def test_create_an_artifact_from_the_sample_panel(page, server_url, dash_app):
    """An int8 run: the job runs on the same weights unquantized, and the panel and the artifact say so."""
    from playwright.sync_api import expect

    data = dash_app.workbench_data
    df = data.samples("run-int8")
    row = df[df.task == "mmlu_anatomy"].iloc[3]
    key = f"mmlu_anatomy#{row['doc_id']}"
    _open(page, f"{server_url}/samples/run-int8?sample={quote(key)}", "page-samples")
    expect(page.locator("#detail-artifacts-box h4")).to_have_text("Interpretability artifacts (0)", timeout=TIMEOUT)
    expect(page.locator("#job-model")).to_have_text(data.run("run-b").manifest["model"]["spec"])
    expect(page.locator("#job-weights-note")).to_contain_text("unquantized")
    page.locator("#job-create").click()
    link = page.locator("#job-artifact-link")
    expect(link).to_contain_text("attention · attention-", timeout=120_000)
    expect(page.locator("#detail-artifacts li")).to_have_count(1, timeout=TIMEOUT)
    _clean(page, "job")
    link.click()
    page.locator("#page-artifact-attention").wait_for(timeout=TIMEOUT)
    expect(page.locator("#artifact-source-link")).to_contain_text(f"run-int8 / mmlu_anatomy #{row['doc_id']}")
    expect(page.locator("#artifact-weights")).to_contain_text("unquantized")
    _clean(page, "job-artifact")
