"""Parkeervergunningen: the deliberately legacy municipal web app that klerk's demo runs against.

`create_app` builds the Starlette app, `DemoServer` runs it in a thread for tests, and
`Faults` says how badly it should behave. It imports nothing from the rest of klerk.
"""

from demo.app import DEMO_PASSWORD, DEMO_USERNAME, create_app
from demo.faults import Faults
from demo.server import DemoServer, serve

__all__ = ["DEMO_PASSWORD", "DEMO_USERNAME", "DemoServer", "Faults", "create_app", "serve"]
