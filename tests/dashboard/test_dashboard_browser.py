"""The dashboard in real headless Chromium (Debian's, driven by Playwright): each page loads against runs and
artifacts made by the real tools, responds to the controls, renders model output as text, stays offline."""
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


def test_leaderboard_filter_select_and_compare(page, server_url, dash_app):
    from playwright.sync_api import expect

    _open(page, server_url + "/", "page-leaderboard")
    rows = page.locator("#lb-grid .ag-center-cols-container .ag-row")
    expect(rows).to_have_count(3, timeout=TIMEOUT)
    model_b = dash_app.workbench_data.run("run-b").manifest["model"]["spec"]
    _pick(page, "lb-model", model_b)
    expect(rows).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator("#lb-grid .ag-pinned-left-cols-container")).to_contain_text("run-b")
    page.reload()
    page.locator("#page-leaderboard").wait_for(timeout=TIMEOUT)
    expect(rows).to_have_count(3, timeout=TIMEOUT)
    for rid in ("run-a", "run-b"):
        page.locator(f'#lb-grid .ag-center-cols-container .ag-row[row-id="{rid}"] .ag-checkbox-input').click()
    link = page.locator("#lb-compare-link")
    expect(link).to_contain_text("Compare 2 runs (baseline run-a)", timeout=TIMEOUT)
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
    if kind != "logit_lens":
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=TIMEOUT)
    if kind == "attribution":
        expect(page.locator("#attr-ig .tok")).to_have_count(len(dash_env and __import__(
            "workbench.interp.artifacts", fromlist=["load"]).load(dash_env.ids[kind], dash_env.artifacts).ig))
    if kind == "logit_lens":
        expect(page.locator("#lens-table-0 tbody tr").first).to_be_visible(timeout=TIMEOUT)
        assert page.evaluate("window.__xss") is None
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
    from playwright.sync_api import expect

    df = dash_app.workbench_data.samples("run-b")
    row = df[df.task == "mmlu_anatomy"].iloc[3]
    key = f"mmlu_anatomy#{row['doc_id']}"
    _open(page, f"{server_url}/samples/run-b?sample={quote(key)}", "page-samples")
    expect(page.locator("#detail-artifacts-box h4")).to_have_text("Interpretability artifacts (0)", timeout=TIMEOUT)
    page.locator("#job-create").click()
    link = page.locator("#job-artifact-link")
    expect(link).to_contain_text("attention · attention-", timeout=120_000)
    expect(page.locator("#detail-artifacts li")).to_have_count(1, timeout=TIMEOUT)
    _clean(page, "job")
    link.click()
    page.locator("#page-artifact-attention").wait_for(timeout=TIMEOUT)
    expect(page.locator("#artifact-source-link")).to_contain_text(f"run-b / mmlu_anatomy #{row['doc_id']}")
