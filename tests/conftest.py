"""Shared by every test module.

Under pytest-xdist (`make test`) the workers share the machine's cores: each worker, and every stage
process it starts, takes an equal share as its OpenMP thread count. With OpenMP's default (all cores)
in every worker, two workers on a 2-core machine thrash: `make test-fast` took 3:07 that way and 1:41
with one thread a worker (2-core AMD EPYC, Zen 3)."""
from __future__ import annotations

import os


def pytest_configure(config):
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")  # set in each worker, before torch is imported
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))


# The longest modules first, so that under `--dist loadfile` no worker starts one of them last
# while the others stand idle (serial minutes on a 2-core AMD EPYC: e2e 11.5, audit 5.5, faults 4, server 3).
LONGEST_FIRST = ("test_e2e.py", "test_audit.py", "test_faults.py", "test_server.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's own order kept
