"""Fault-injection and example steps for the tests, registered like any custom step.

Workers import this module through PAGEKIT_STEP_MODULES (tests/conftest.py sets it),
the same path a user's own step module takes (OCRmyPDF's tests/plugins do the same).
"""

from __future__ import annotations

import os
import time

import pagekit


@pagekit.step("slow")
def slow(page):
    """Sleep PAGEKIT_TEST_SLOW_SECONDS (default 1.5 s): makes a batch slow enough to watch."""
    time.sleep(float(os.environ.get("PAGEKIT_TEST_SLOW_SECONDS", "1.5")))
    return {"slept": True}


@pagekit.step("crash")
def crash(page):
    """Always fails: the page must fail, the batch must go on."""
    raise RuntimeError("injected failure")


@pagekit.step("shout")
def shout(page):
    """A harmless custom step: the text upper-cased and its first word."""
    words = page.text.split()
    return {"first_word": words[0].upper() if words else None}


@pagekit.step("overtime")
def overtime(page):
    """Sleep 60 s: longer than any small PAGEKIT_PAGE_TIME_LIMIT a test starts workers with."""
    time.sleep(60)
    return {"slept": True}


@pagekit.step("kill-worker")
def kill_worker(page):
    """SIGKILL the worker process running the page, every time (a page that kills its worker)."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
