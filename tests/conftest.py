import base64
import os

# One payload key for every Fairlane process a test starts (API, worker, embedded stack
# children inherit the environment), so what one encrypts the others can read.
os.environ.setdefault(
    "FAIRLANE_PAYLOAD_KEYS", f'{{"test1": "{base64.b64encode(b"t" * 32).decode()}"}}'
)
os.environ.setdefault("FAIRLANE_PAYLOAD_KEY_CURRENT", "test1")

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.services",
    "tests.fixtures.api",
    "tests.fixtures.console",
]
