"""The browser room: launching Chromium, turning steps into Playwright calls, the applications.

Playwright is imported here and nowhere else. `register_all` makes the bots known to the core.
"""

from __future__ import annotations


def register_all() -> None:
    """Register the generic bot (app definitions in YAML) and the app modules' actions."""
    from bots import apps, session
    from tasks.plugins import register_bot

    register_bot("generic", session.GenericBot)
    apps.load_actions()
