"""report.html in a real browser (issue #13): a fast run's report opened in headless Chromium
through Playwright, asserted on the DOM, with screenshots kept.

The run uses the fake sampler (tests/fast_tier.py): what is tested is the report, not the
draws. Chromium is Debian's (``make browser``); without it (or without Playwright) the test
skips with the reason, except under CI (``CI`` set, as .ci/run does), where it fails.
Screenshots go to ``UPLIFT_SCREENSHOTS`` (default: the test's tmp_path).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift.report.browser import FIRST_SCREEN, chromium, chromium_path
from uplift.report.formatting import money, percent

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
#: a segment value that runs script if the report ever lets data text through as markup
HOSTILE = "<img src=x onerror=alert(1)>"


def _browser_or_skip() -> None:
    """Skip without Chromium or Playwright, with the fix; fail instead under CI."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "Playwright is not installed (pip install -e '.[dev]')"
    if problem is None and chromium_path() is None:
        problem = "no Chromium on this machine (make browser, or apt-get install -y chromium)"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI must run the browser test: {problem}")
        pytest.skip(problem)


def _csv(path: Path, n: int = 6000, seed: int = 1) -> Path:
    """Three tiers x two regions (one of them a hostile string), control and three arms over
    two tactics, with effects that differ by tier so the plan uses several arms."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "email_a", "email_b", "call"], n)
    tier = rng.choice(["high", "mid", "low"], n)
    region = rng.choice(["north", HOSTILE], n)
    lift = {
        "control": 0.0,
        "email_a": 0.10 * (tier == "high") + 0.02 * (tier == "mid"),
        "email_b": 0.10 * (tier == "mid") + 0.01,
        "call": 0.15 * (tier == "low") * (region == "north"),
    }
    p = 0.06 + np.select([arm == a for a in lift], [np.broadcast_to(v, n) for v in lift.values()])
    conv = (rng.random(n) < p).astype(int)
    pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tier": tier,
            "region": region,
            "arm": arm,
            "converted": conv,
            "revenue": np.where(conv == 1, rng.lognormal(4.2, 0.4, n).round(2), 0.0),
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A complete run's folder (fake sampler, no cross-fitting: seconds)."""
    import fast_tier

    _browser_or_skip()  # before the run: a skip costs nothing

    tmp = tmp_path_factory.mktemp("browser_run")
    mp = pytest.MonkeyPatch()
    fast_tier.install(mp)
    try:
        config = uplift.compose_config(
            [
                "data=csv",
                f"data.path={_csv(tmp / 'c.csv')}",
                "data.columns.segments=[tier,region]",
                "tactics=custom",
                "+tactics.arms.control={tactic: control}",
                "+tactics.arms.email_a={tactic: cross_sell, cost: 0.5}",
                "+tactics.arms.email_b={tactic: cross_sell, cost: 0.8}",
                "+tactics.arms.call={tactic: retention, cost: 2.0}",
                "sampler=fast",
                "sampler.draws=200",
                "sampler.tune=200",
                "optimize.allow_unconverged=true",
                "evaluate.crossfit_folds=0",
                "report.save_posteriors=false",
                "optimize.budget=3000",
                "report.currency='€'",
            ]
        )
        uplift.run(config, tmp / "out")
    finally:
        mp.undo()
    return tmp / "out"


def _shots() -> Path | None:
    named = os.environ.get("UPLIFT_SCREENSHOTS")
    return Path(named) if named else None


def test_report_html_in_chromium(report, tmp_path):
    _browser_or_skip()
    shots = _shots() or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    html = report / "report.html"
    assert html.exists() and (report / "report.md").exists()
    alloc = pd.read_csv(report / "allocation.csv")
    summary = json.loads((report / "summary.json").read_text())
    plan = {r["arm"]: r for r in summary["plan_by_arm"]}
    problems: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport=FIRST_SCREEN)
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on(
            "request",
            lambda r: r.url.startswith(("data:", "file:")) or problems.append(f"network: {r.url}"),
        )
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(shots / "report_first_screen.png"))
        page.screenshot(path=str(shots / "report_full.png"), full_page=True)

        # one action per arm that gets customers, with allocation.csv's numbers
        used = alloc[alloc["customers"] > 0].groupby("arm")
        items = page.locator("li.action")
        assert items.count() == used.ngroups >= 2, items.all_inner_texts()
        for arm, rows in used:
            li = page.locator(f'li.action[data-arm="{arm}"]')
            text = li.inner_text()
            customers, spend = int(rows["customers"].sum()), float(rows["spend"].sum())
            assert f"{customers:,} customers" in text, text
            assert f"in {rows['segment'].nunique()} segment" in text, text
            assert f"spend {money(spend, '€')}" in text, text
            # the arm's expected profit is the sum of its cells' means; its interval is the
            # arm's own (from summed draws), as in summary.json, and no wider than the cells'
            profit = float(li.get_attribute("data-profit"))
            assert profit == pytest.approx(rows["expected_incremental_profit"].sum(), rel=1e-5)
            assert f"expected profit {money(profit, '€')}" in text, text
            low, high = float(li.get_attribute("data-low")), float(li.get_attribute("data-high"))
            assert (low, high) == pytest.approx(
                (plan[arm]["profit_hdi_low"], plan[arm]["profit_hdi_high"]), rel=1e-9
            )
            assert low <= profit <= high
            width = (rows["profit_hdi_high"] - rows["profit_hdi_low"]).sum()
            assert high - low <= width * 1.01 + 1e-9
            assert f"likely between {money(low, '€')} and {money(high, '€')}" in text, text
            loss = plan[arm]["prob_loss"]
            assert ("< 0.1%" if loss == 0 else percent(loss)) in text, text

        # the first screen at 1366x768: every action, the plan's value and the budget step
        for box in [items.nth(i).bounding_box() for i in range(items.count())] + [
            page.locator("#budget-step").bounding_box()
        ]:
            assert box is not None and box["y"] + box["height"] <= FIRST_SCREEN["height"], box
        assert "The number to plan on" in page.locator("#plan-value").inner_text()
        assert "of budget would return" in page.locator("#budget-step").inner_text()

        # hostile data text shows as text; nothing ran (no dialog, no request for "x")
        assert HOSTILE in page.locator("body").inner_text()
        assert page.locator('img[src="x"]').count() == 0

        # tables sort by value when a header is clicked
        table = page.locator("#plan table.sortable").nth(1)  # treated cells of a tactic
        header = table.locator("th", has_text="Expected profit")
        col = [h.inner_text() for h in table.locator("th").all()].index(header.inner_text())

        def column() -> list[float]:
            cells = table.locator(f"tbody tr td:nth-child({col + 1})")
            return [float(c.get_attribute("data-sort")) for c in cells.all()]

        before = column()
        assert len(before) >= 2 and before == sorted(before, reverse=True)  # as rendered
        header.click()
        assert column() == sorted(before) != before
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        assert column() == sorted(before, reverse=True)
        assert page.locator("table.sortable").count() >= 8

        # every figure decoded, inline (data: URIs), folded ones too once a reader opens them
        page.locator("details").evaluate_all("ds => ds.forEach(d => { d.open = true; })")
        images = page.locator("img")
        assert images.count() >= 4
        for i in range(images.count()):
            img = images.nth(i)
            img.scroll_into_view_if_needed()
            assert img.is_visible() and img.evaluate("i => i.complete && i.naturalWidth > 0"), i
            assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")

        # downloads: both plan files, embedded byte for byte
        for name in ("allocation.csv", "targets.csv"):
            link = page.locator(f'a.download[download="{name}"]')
            assert link.count() == 1
            href = link.get_attribute("href") or ""
            assert href.startswith("data:text/csv;charset=utf-8;base64,")
            assert base64.b64decode(href.split(",", 1)[1]) == (report / name).read_bytes()

        # the sections a planner needs, in words
        body = page.locator("body").inner_text()
        for words in ("Plan by tactic", "Readout", "Model health", "Glossary", "Downloads"):
            assert words in body
        overall = pd.read_csv(report / "readout.csv")
        overall = overall[overall["segment"] == "__overall__"].set_index("arm")
        for arm in used.groups:
            if overall.loc[arm, "recommendation"] != "ship":
                notes = page.locator(".readout-note").all_inner_texts()
                assert any(f"arm {arm})" in n and "where it pays" in n for n in notes), notes
        page.close()
    assert not problems, problems
    assert (shots / "report_first_screen.png").stat().st_size > 10_000
