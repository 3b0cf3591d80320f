"""Deprecated: claims and locks live in `rnnbench.store.claims`; re-exported here for one release."""

from rnnbench.store.claims import *  # noqa: F401,F403
from rnnbench.store.claims import (
    ClaimLost,
    Held,
    LockTimeout,
    Owned,
    Claim,
    alive,
    die_with,  # noqa: F401
    folder_lock,
    take,
    whoami,
    write_atomically,
)
