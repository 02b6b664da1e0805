"""Executes one notebook on the Rust (evcxr) kernel and judges every cell.

Called by the headless runner (tests/notebooks.rs), once per notebook. `nbconvert
--execute` is not enough: evcxr catches a panic (a failed `assert!`), prints it to stderr
and reports the cell as fine, and the `?` operator's errors go to stderr the same way. So a
code cell fails when it has an error output *or* writes anything to stderr; course code
reports through stdout and figures, never stderr.

Cells tagged `raises-exception` (the Jupyter convention) must fail; a notebook in which
one does not fails. Execution stops at the first cell that fails when it should not.

Measures the kernel's peak resident memory (`KernelMemory`, on Linux; null elsewhere).

Writes the executed copy (signed, so JupyterLab shows its figures) and an HTML rendering,
and prints one JSON object: {"ok", "reason", "seconds", "peak_rss_mb", "cells": [[index,
seconds], ...]}.
"""

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbconvert import HTMLExporter
from nbformat.sign import NotebookNotary

KERNEL = "rust"
SETUP_HINT = "run `make test` (or `make setup`) once to install it"
# evcxr forwards the program's stderr on a thread of its own, so a panic message can
# arrive just after the cell reported that it finished (seen: 2 cells in 30, 1 ms late);
# wait this long for stragglers.
LATE_OUTPUT_S = 0.25
# After the last cell nothing follows that would reveal a lost panic, so wait longer.
LATE_OUTPUT_LAST_S = 2.0


def kernel_problem():
    """Why the Rust kernel cannot start, or None."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return f"the Jupyter kernel '{KERNEL}' (evcxr_jupyter) is not installed: {SETUP_HINT}"
    program = spec.argv[0]
    if os.sep in program and not os.access(program, os.X_OK):
        return f"the '{KERNEL}' kernel points to {program}, which is missing: {SETUP_HINT}"
    return None


def cell_failure(cell):
    """Why an executed code cell failed, or None: an error output or any stderr text."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            message = output.get("evalue") or output.get("ename") or "error"
            return " ".join(str(message).split())
    stderr = "".join(
        o.get("text", "") for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )
    if stderr.strip():
        message = stderr.split("stack backtrace:")[0].split()
        return "wrote to stderr: " + " ".join(message)[:400]
    return None


def collect_late_output(client, cell, seconds):
    """Adds to `cell` the stream output that arrives within `seconds` after it ended.

    nbclient stops listening once a cell reports that it is done, and drops messages of a
    finished cell when the next one runs; one cell runs at a time, so what comes in now
    belongs to the cell that just ran.
    """
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = run_sync(client.kc.get_iopub_msg)(timeout=remaining)
        except queue.Empty:
            return
        if message["msg_type"] == "stream":
            content = message["content"]
            cell.outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))


class KernelMemory:
    """The kernel's peak resident memory, read from Linux's /proc after every cell.

    The kernel is a tree of processes: the one Jupyter started (tools/kernel.py, which
    execs evcxr_jupyter: the Jupyter connection and evcxr's embedded rust-analyzer), the
    process evcxr runs the cells' code in (the notebook's tensors and models), and, while a
    cell is being built, cargo and rustc. Each process's VmHWM is its own peak resident set
    so far; a sample is the sum over the processes alive at that moment, and the peak is the
    largest sample. After a cell the build has exited, so a sample holds the long-lived
    processes, each at its peak: an upper bound on what they held at once (their peaks
    need not coincide, and pages they share count in each), the side to err on for a memory
    goal. The build's processes (cargo, rustc, the linker) are left out: they live for the
    seconds a cell compiles, and their memory is the compiler's, much the same for every
    cell, not what the notebook computes.
    """

    def __init__(self):
        self.peak_kb = None

    def sample(self, pid):
        if pid is None or not os.path.isdir("/proc"):
            return
        peaks = [kb for p in process_tree(pid) if (kb := vm_hwm_kb(p)) is not None]
        if peaks:
            self.peak_kb = max(self.peak_kb or 0, sum(peaks))

    def mb(self):
        """The peak in MB of 1024 kB (/proc's units), or None where it was not measured."""
        return None if self.peak_kb is None else round(self.peak_kb / 1024)


def process_tree(pid):
    """`pid` and every process descended from it, from each process's parent in /proc."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                # "pid (command) state ppid ...": the command may hold spaces and parentheses.
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue  # it has just exited
        children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        tree.append(pending.pop())
        pending.extend(children.get(tree[-1], []))
    return tree


def vm_hwm_kb(pid):
    """The process's peak resident set size so far, in kB; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cell_timeout(cell, default, dep):
    """A cell that loads crates may compile them cold (minutes); others get `default`."""
    return dep if ":dep" in cell.source else default


def execute(notebook, folder, cell_timeout_s, dep_timeout_s, memory):
    """Runs the notebook's code cells in order, sampling the kernel's `memory` after each;
    returns (ok, reason, per-cell seconds).

    The kernel starts in the notebook's folder, so `:dep mustknow = { path = ".." }` works.
    """
    client = NotebookClient(
        notebook,
        resources={"metadata": {"path": str(folder)}},
        kernel_name=KERNEL,
        allow_errors=True,
        timeout=cell_timeout_s,
        timeout_func=lambda cell: cell_timeout(cell, cell_timeout_s, dep_timeout_s),
        startup_timeout=120,
    )
    timings = []
    code_cells = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    with client.setup_kernel():
        for number, (index, cell) in enumerate(code_cells, start=1):
            where = f"code cell {number}"
            start = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                limit = cell_timeout(cell, cell_timeout_s, dep_timeout_s)
                return False, f"{where} timed out after {limit} s", timings
            except DeadKernelError:
                return False, f"the kernel died in {where}", timings
            finally:
                memory.sample(getattr(client.km.provisioner, "pid", None))
            timings.append([number, round(time.monotonic() - start, 2)])
            last = number == len(code_cells)
            collect_late_output(client, cell, LATE_OUTPUT_LAST_S if last else LATE_OUTPUT_S)
            failure = cell_failure(cell)
            expected = "raises-exception" in cell.metadata.get("tags", [])
            if failure and not expected:
                return False, f"{where}: {failure}", timings
            if expected and not failure:
                return False, f"{where} is tagged raises-exception but ran without error", timings
    return True, "", timings


def save(notebook, executed_path, html_path):
    """The executed copy, signed so JupyterLab trusts its figures, and its HTML page."""
    executed_path.parent.mkdir(parents=True, exist_ok=True)
    NotebookNotary().sign(notebook)
    nbformat.write(notebook, executed_path)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    html_path.write_text(body, encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the executed copy")
    parser.add_argument("--cell-timeout", type=int, default=600)
    parser.add_argument("--dep-timeout", type=int, default=1800)
    args = parser.parse_args()

    problem = kernel_problem()
    if problem:
        print(json.dumps({"ok": False, "reason": problem, "seconds": 0, "peak_rss_mb": None,
                          "cells": []}))
        return
    notebook = nbformat.read(args.notebook, as_version=4)
    overrides = notebook.metadata.get("mustknow", {})
    cell_timeout_s = int(overrides.get("cell_timeout", args.cell_timeout))
    start = time.monotonic()
    folder = args.notebook.resolve().parent
    memory = KernelMemory()
    ok, reason, timings = execute(notebook, folder, cell_timeout_s, args.dep_timeout, memory)
    seconds = round(time.monotonic() - start, 1)
    stem = args.notebook.stem
    run = {"ok": ok, "reason": reason, "seconds": seconds, "peak_rss_mb": memory.mb()}
    # How this copy was made, for the book (`make book` takes only copies that passed).
    notebook.metadata.setdefault("mustknow", {})["run"] = {
        **run, "seed": os.environ.get("MUSTKNOW_SEED")}
    save(notebook, args.out / f"{stem}.ipynb", args.out / f"{stem}.html")
    print(json.dumps({**run, "cells": timings}))


if __name__ == "__main__":
    sys.exit(main())
