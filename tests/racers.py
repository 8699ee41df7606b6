"""Worker programs for the race tests, run as separate OS processes.

``python -m tests.racers cli GO_FILE READY_FILE ARGS...``: import the CLI, signal ready, wait
for GO_FILE to appear, then run ``leasehold ARGS`` in-process (so the claims of all racers hit
the store within the same few milliseconds) and exit with its code.
``python -m tests.racers exec GO_FILE READY_FILE ARGS...``: the same, but exec the real
``leasehold`` console script at the barrier.
``python -m tests.racers drain DB NAME GO_FILE READY_FILE HELD_FILE GO2_FILE``: at the barrier,
take one task with ``next`` and write its id to HELD_FILE, wait for GO2_FILE (every racer holds
its first task at once), then loop next -> done through the Python API until no task is left;
print the ids done, one per line.
"""

from __future__ import annotations

import os
import sys
import time


def barrier(go: str, ready: str) -> None:
    with open(ready, "w"):
        pass
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(99)
        time.sleep(0.0005)


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "cli":
        from leasehold.cli import build_parser
        from leasehold.cli import main as cli_main

        build_parser(argv[3])
        barrier(argv[1], argv[2])
        return cli_main(argv[3:])
    if mode == "exec":
        from tests.conftest import LEASEHOLD

        barrier(argv[1], argv[2])
        os.execv(LEASEHOLD, [LEASEHOLD, *argv[3:]])
    if mode == "drain":
        from leasehold import Holder, Ledger

        db, name, go, ready, held, go2 = argv[1:7]
        holder = Holder(name, f"pid{os.getpid()}")
        with Ledger.open(db) as ledger:
            ledger.now()  # connected before the barrier
            barrier(go, ready)
            first = ledger.next(holder, ttl=60)
            with open(held + ".tmp", "w") as fh:
                fh.write(" ".join(lease.task_id for lease in first))
            os.replace(held + ".tmp", held)
            barrier(go2, held + ".seen")
            leases = first
            while True:
                if not leases:
                    leases = ledger.next(holder, ttl=60)
                if not leases:
                    return 0
                for lease in leases:
                    ledger.complete(lease.task_id, holder, fence=lease.fence)
                    print(lease.task_id, flush=True)
                leases = []
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
