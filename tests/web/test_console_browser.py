"""The web console in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

A subscriber signs in, uploads a script with an error and sees it marked on its
line, fixes it, simulates a busy callee and sees voicemail in the trace, and
rolls back to an earlier version. ``./dev test`` installs chromium; Playwright's
own browser download is never used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.web.harness import BROKEN, VOICEMAIL_ON_BUSY, Site, run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed: run ./dev test (it installs Debian's chromium)")
    pytest.importorskip("playwright", reason="playwright is missing: pip install -e '.[test]'")


def test_console_sign_in_fix_an_error_simulate_busy_and_roll_back(tmp_path: Path) -> None:
    need_browser()
    from playwright.async_api import async_playwright, expect

    async def scenario(site: Site) -> None:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
            )
            try:
                page = await context.new_page()
                await page.goto(site.url + "/")
                # Sign in.
                await page.fill("#signin-user", "alice@example.com")
                await page.fill("#signin-password", "alice-pw")
                await page.click("#signin-submit")
                await expect(page.locator("#whoami")).to_have_text("alice@example.com")
                await expect(page.locator("#script-status")).to_have_text("no script yet")
                # A script with errors: refused, each marked on its line.
                await page.fill("#source", BROKEN)
                await page.click("#save")
                marked = page.locator("#gutter .line.error")
                await expect(marked.first).to_have_attribute("data-line", "3")
                await expect(marked.first).to_have_attribute(
                    "title", "'open' is not available in scripts"
                )
                await expect(page.locator("#gutter .line.error[data-line='4']")).to_have_count(1)
                await expect(page.locator("#gutter .line.error[data-line='1']")).to_have_count(0)
                await expect(page.locator("#problems li").first).to_have_text(
                    "3:5: 'open' is not available in scripts"
                )
                await expect(page.locator("#save-result")).to_contain_text("Refused")
                assert not site.script_file("alice").exists()
                # Fixed: accepted and live.
                await page.fill("#source", VOICEMAIL_ON_BUSY)
                await page.click("#save")
                await expect(page.locator("#save-result")).to_have_text("Saved: version 1 is live")
                await expect(page.locator("#gutter .line.error")).to_have_count(0)
                assert site.script_file("alice").read_text() == VOICEMAIL_ON_BUSY
                # Simulate a busy callee: the trace ends in voicemail.
                await page.click("#tabs button[data-tab='simulate']")
                await page.fill("#sim-from", "sip:carol@example.net")
                await page.fill("#sim-outcomes", "busy")
                await page.select_option("#sim-version", "live")
                await page.click("#simulate")
                trace = page.locator("#trace li")
                await expect(trace.first).to_contain_text("-> busy")
                await expect(trace.nth(1)).to_contain_text("voicemail")
                await expect(trace.last).to_have_text("=> voicemail")
                await page.screenshot(path=str(tmp_path / "simulate.png"))
                # A second version, then roll back to the first.
                await page.click("#tabs button[data-tab='script']")
                await page.fill("#source", VOICEMAIL_ON_BUSY.replace("15", "25"))
                await page.click("#save")
                await expect(page.locator("#save-result")).to_have_text("Saved: version 2 is live")
                await page.click("#tabs button[data-tab='versions']")
                await expect(page.locator("#versions tr.live")).to_have_attribute("data-id", "2")
                await page.click("#versions tr[data-id='1'] button.rollback")
                await expect(page.locator("#versions-result")).to_have_text(
                    "Version 1 is live again"
                )
                await expect(page.locator("#versions tr.live")).to_have_attribute("data-id", "1")
                assert site.script_file("alice").read_text() == VOICEMAIL_ON_BUSY
                running = site.host.registry.get("example.com/alice.py")
                assert running is not None and running.source == VOICEMAIL_ON_BUSY
                await page.screenshot(path=str(tmp_path / "versions.png"))
            finally:
                await context.close()

    run(tmp_path, scenario)


def test_console_shows_admins_the_audit_log_and_scripts(tmp_path: Path) -> None:
    need_browser()
    from playwright.async_api import async_playwright, expect

    async def scenario(site: Site) -> None:
        await site.call("PUT", "/api/users/alice@example.com/script", user="alice", data=BROKEN)
        await site.call("GET", "/api/users/alice@example.com/script", user="bob")
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
            )
            try:
                page = await context.new_page()
                await page.goto(site.url + "/")
                await page.fill("#signin-user", "root@example.com")
                await page.fill("#signin-password", "root-pw")
                await page.click("#signin-submit")
                await expect(page.locator("#whoami")).to_have_text("root@example.com (admin)")
                await page.click("#admin-tab")
                audit = page.locator("#admin-audit tr")
                await expect(audit.filter(has_text="access:denied")).to_have_count(1)
                await expect(audit.filter(has_text="reject:upload")).to_have_count(1)
                await expect(page.locator("#admin-users tr")).to_have_count(3)
                await expect(page.locator("#admin-policy")).to_contain_text("wall_per_event")
                await page.fill("#audit-kind", "access")
                await page.click("#audit-form button")
                await expect(audit).to_have_count(1)
            finally:
                await context.close()

    run(tmp_path, scenario)
