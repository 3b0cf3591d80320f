"""Deprecated: claims and locks live in `rnnbench.store.claims`; re-exported here for one release
(Claim, ClaimLost, Held, LockTimeout, Owned, alive, die_with, folder_lock, take, whoami,
write_atomically and the module's other public names)."""

from rnnbench.store.claims import *  # noqa: F403
