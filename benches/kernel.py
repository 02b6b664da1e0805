"""The latencies a learner feels in the Rust kernel, measured through the real kernel.

Run by `make bench` (benches/compare.py) with the Python that has Jupyter. Starts two
kernels one after the other, as JupyterLab starts them (through tools/kernel.py, which
gives each a build folder that outlives it), and times in each: the kernel's start, the
set-up cell every notebook opens with (`:dep` on the crate), the first cell that calls the
crate, and a trivial cell. The first kernel compiles what its build folder lacks, so the
second one measures what a learner opening a notebook waits for. Prints one JSON object.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
SETUP = ':cache 4096\n:dep mustknow = { path = ".." }\nuse mustknow::prelude::*;'
FIRST_CALL = "let seed = notebook_seed(0)?;"
TRIVIAL = "1 + 1"
TRIVIAL_RUNS = 10
COLD_TIMEOUT_S = 1800


def timed(client, code, timeout):
    """Seconds `code` takes in the kernel; exits with the kernel's words if it fails."""
    errors = []

    def keep_errors(message):
        content = message["content"]
        if message["msg_type"] == "stream" and content["name"] == "stderr":
            errors.append(content["text"])
        elif message["msg_type"] == "error":
            errors.append(content.get("evalue", "error"))

    start = time.monotonic()
    reply = client.execute_interactive(code, timeout=timeout, output_hook=keep_errors)
    seconds = time.monotonic() - start
    if reply["content"]["status"] != "ok" or errors:
        sys.exit(f"the kernel failed on {code!r}: {''.join(errors)[:400]}")
    return seconds


def kernel_session():
    """One new kernel: its start, the set-up, first-call and trivial cells."""
    # As in JupyterLab: the launcher picks the build folder.
    env = {k: v for k, v in os.environ.items() if k != "EVCXR_TMPDIR"}
    start = time.monotonic()
    # The kernel's own prints go to stderr: stdout carries the one JSON object.
    manager, client = start_new_kernel(
        kernel_name="rust", cwd=str(ROOT / "notebooks"), env=env, stdout=sys.stderr
    )
    try:
        started = time.monotonic() - start
        setup = timed(client, SETUP, COLD_TIMEOUT_S)
        first = timed(client, FIRST_CALL, 600)
        trivial = [timed(client, TRIVIAL, 60) for _ in range(TRIVIAL_RUNS)]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {
        "start_s": started,
        "setup_s": setup,
        "first_call_s": first,
        "trivial_s": statistics.median(trivial),
    }


def main():
    first = kernel_session()
    second = kernel_session()
    print(json.dumps({"first_kernel": first, "warm_kernel": second}))


if __name__ == "__main__":
    main()
