"""`make bench`: the course's speed, in four tables.

1. Training steps and layers: the crate's benchmarks (benches/course.rs) and, when PyTorch
   is installed, the same cases in PyTorch on the same machine and thread count, with the
   ratio ours / PyTorch (below 1: we are faster): medians of `--rounds` rounds (3) in which
   the two sides take turns. PyTorch is opt-in and large (about 5 GB with its CUDA
   libraries): `make bench-torch` installs it into target/torch-venv.
2. The convolution layers of table 1 in GFLOP/s (`flops`), beside each side's own large f32
   matrix product timed in the same rounds: the ceiling the layers' products run into, and
   ours as a share of it.
3. What a learner waits for in the Rust kernel (benches/kernel.py).
4. Each notebook's run time and its kernel's peak memory in the headless runner, which runs
   them all (about 25 minutes; `--no-notebooks` skips it), against the goals, and the total.

Standard library only, so it runs with any python3; the kernel and the notebooks need the
Jupyter environment `make setup` installs (MUSTKNOW_PYTHON, else .venv).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass

TORCH_PYTHON = os.path.join("target", "torch-venv", "bin", "python")
JUPYTER_PYTHON = os.environ.get("MUSTKNOW_PYTHON", os.path.join(".venv", "bin", "python"))
TIMES = os.path.join("target", "notebooks", "times.json")
# The issues' goals for a learner's waits, in seconds, and for the kernel's memory.
WARM_SETUP_GOAL_S = 10
TRIVIAL_GOAL_S = 1
NOTEBOOK_GOAL_S = 180
NOTEBOOK_GOALS_S = {"09_diffusion": 240, "10_guided_latent_diffusion": 240}
TOTAL_GOAL_S = 20 * 60
MEMORY_GOAL_GB = 4


def run(cmd, stdin=None, env=None):
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# The case benches/course.rs times as the convolutions' ceiling, and the ops it compares with it.
CEILING_OP = "gemm_ceiling"
CONV_OPS = ("conv", "conv_transpose")


@dataclass
class Timings:
    """Each case's times in ms, one per round: ours, and PyTorch's (None when PyTorch is not
    installed), with the thread count both sides ran on and PyTorch's version."""
    cases: list
    ours: dict
    theirs: dict
    threads: int
    version: str


def measure(rounds):
    """Times every case of benches/course.rs, and PyTorch's when it is installed."""
    run(["cargo", "bench", "--bench", "course", "--no-run"])
    bench = ["cargo", "bench", "--quiet", "--bench", "course", "--"]
    cases = json.loads(run(bench + ["--cases"]))
    if not os.path.exists(TORCH_PYTHON):
        out = json.loads(run(bench + ["--json"]))
        ours = {r["name"]: [r["ms"]] for r in out["results"]}
        return Timings(cases, ours, None, out["threads"], None)
    # The two sides take turns, one op's cases at a time, ours first in even rounds and
    # PyTorch first in odd ones, so that both run in the same minute of a machine whose
    # speed drifts. Round 0 runs ours first: it tells PyTorch the thread count.
    ops = list(dict.fromkeys(c["op"] for c in cases))
    ours, theirs = {}, {}
    for r in range(rounds):
        for op in ops:
            for side in ("ours", "torch") if r % 2 == 0 else ("torch", "ours"):
                if side == "ours":
                    out = json.loads(run(bench + ["--json", op]))
                    threads, times = out["threads"], ours
                else:
                    picked = json.dumps([c for c in cases if c["op"] == op])
                    out = json.loads(run([TORCH_PYTHON, "benches/torch_course.py", str(threads)],
                                         stdin=picked))
                    version, times = out["version"], theirs
                for result in out["results"]:
                    times.setdefault(result["name"], []).append(result["ms"])
    return Timings(cases, ours, theirs, threads, version)


def steps_table(t, rounds):
    # The ceiling is not a step of the course: it has its own table, below.
    cases = [c for c in t.cases if c["op"] != CEILING_OP]
    if t.theirs is None:
        print(f"{cpu_name()}, {os.cpu_count()} cores; {t.threads} threads\n")
        print("| case | ours, ms |\n| --- | ---: |")
        for c in cases:
            print(f"| {c['name']} | {t.ours[c['name']][0]:.2f} |")
        print("\nPyTorch is not installed, so there is nothing to compare with: `make bench-torch`"
              " installs it (about 5 GB) into target/torch-venv, then run `make bench` again.")
        return
    print(f"{cpu_name()}, {os.cpu_count()} cores; {t.threads} threads on both sides;"
          f" medians of {rounds} rounds, the sides taking turns op by op\n")
    print(f"| case | ours, ms | PyTorch {t.version}, ms | ours / PyTorch | each round |")
    print("| --- | ---: | ---: | ---: | --- |")
    for c in cases:
        a, b = t.ours[c["name"]], t.theirs[c["name"]]
        each = " / ".join(f"{x / y:.2f}" for x, y in zip(a, b))
        print(f"| {c['name']} | {statistics.median(a):.2f} | {statistics.median(b):.2f} |"
              f" {statistics.median(a) / statistics.median(b):.2f} | {each} |")


def flops(case):
    """Floating-point operations in one timed run of a convolution case or of the ceiling.

    A convolution's forward pass is one multiply-add (2 FLOPs) per output value, input
    channel and kernel tap: 2 · batch · out · out_h · out_w · channels · k², the taps on the
    padding included, as im2col computes them. A run is forward + backward with both the
    image and the kernels needing gradients (course.rs traces the image and records the
    kernels as a parameter; torch_course.py's x and w require grad), and each gradient is one
    more pass of the same count: 3 × the forward. A transposed convolution's forward pass is
    the input gradient of the convolution from its output back to its input, so the count
    is that convolution's: the same with the two planes swapped, its input plane (`size`²)
    in place of out_h · out_w. The sum that starts the backward pass (an add per output
    value) is left out. The ceiling, an n × n matrix product: 2n³.
    """
    n, k = case["size"], case["kernel"]
    if case["op"] == CEILING_OP:
        return 2 * n**3
    if case["op"] == "conv":
        out_h = (n + 2 * case["padding"] - k) // case["stride"] + 1
        plane = out_h * out_h
    else:
        assert case["op"] == "conv_transpose", case["op"]
        plane = n * n
    return 3 * 2 * case["batch"] * case["out"] * case["channels"] * k * k * plane


def conv_table(t):
    """The convolution layers in GFLOP/s, beside the f32 matrix product's, timed in the same
    rounds: the ceiling, as a layer made of such products runs at best about as fast."""
    ceiling = next(c for c in t.cases if c["op"] == CEILING_OP)
    rows = [c for c in t.cases if c["op"] in CONV_OPS] + [ceiling]

    def speed(case, times):
        ms = statistics.median(times)
        return ms, flops(case) / ms / 1e6

    top = speed(ceiling, t.ours[ceiling["name"]])[1]
    print("\nThe convolution layers, forward + backward, against the f32 matrix product, the"
          " ceiling, timed in the same rounds (GFLOP/s: `flops` in benches/compare.py):\n")
    torch_head = (f" PyTorch {t.version}, ms | PyTorch, GFLOP/s | ours / PyTorch |"
                  if t.theirs else "")
    print(f"| layer | ours, ms | ours, GFLOP/s |{torch_head} ours, % of the ceiling |")
    print("| --- | ---: | ---: |" + (" ---: | ---: | ---: |" if t.theirs else "") + " ---: |")
    for c in rows:
        ms, gflops = speed(c, t.ours[c["name"]])
        row = f"| {c['name']} | {ms:.2f} | {gflops:.1f} |"
        if t.theirs:
            torch_ms, torch_gflops = speed(c, t.theirs[c["name"]])
            row += f" {torch_ms:.2f} | {torch_gflops:.1f} | {ms / torch_ms:.2f} |"
        print(f"{row} {100 * gflops / top:.0f}% |")


def goal(value, limit, unit):
    return f"≤ {limit} {unit}: {'met' if value <= limit else 'NOT met'}"


def kernel_table():
    if not os.path.exists(JUPYTER_PYTHON):
        sys.exit(f"{JUPYTER_PYTHON} is missing: run `make setup` first (it installs Jupyter and the kernel)")
    k = json.loads(run([JUPYTER_PYTHON, "benches/kernel.py"]))
    first, warm = k["first_kernel"], k["warm_kernel"]
    print("\nThe Rust kernel: two kernels one after the other, started as JupyterLab starts them"
          " (seconds):\n")
    print("| wait | first kernel | next kernel | goal |")
    print("| --- | ---: | ---: | --- |")
    rows = [
        ("kernel start", "start_s", None),
        ("set-up cell (`:dep` on the crate)", "setup_s", WARM_SETUP_GOAL_S),
        ("first cell calling the crate", "first_call_s", None),
        ("trivial cell (median of 10)", "trivial_s", TRIVIAL_GOAL_S),
    ]
    for name, key, limit in rows:
        target = goal(warm[key], limit, "s") if limit else ""
        print(f"| {name} | {first[key]:.2f} | {warm[key]:.2f} | {target} |")


def notebooks_table():
    env = dict(os.environ, MUSTKNOW_PYTHON=JUPYTER_PYTHON)
    done = subprocess.run(["cargo", "test", "--release", "--test", "notebooks"], env=env)
    if not os.path.exists(TIMES):
        sys.exit(f"the notebook runner wrote no {TIMES}")
    with open(TIMES) as f:
        times = json.load(f)
    print("\nEach notebook in the headless runner, one warm kernel after another: run time and"
          " the kernel's peak resident memory (tests/execute_notebook.py's KernelMemory):\n")
    print("| notebook | run time, s | goal | peak memory, GB | goal |")
    print("| --- | ---: | --- | ---: | --- |")
    for t in times:
        limit = NOTEBOOK_GOALS_S.get(t["notebook"], NOTEBOOK_GOAL_S)
        verdict = goal(t["seconds"], limit, "s") if t["passed"] else "FAILED"
        print(f"| {t['notebook']} | {t['seconds']:.1f} | {verdict} | {memory(t['peak_rss_mb'])} |")
    total = sum(t["seconds"] for t in times)
    verdict = goal(total, TOTAL_GOAL_S, "s") if all(t["passed"] for t in times) else "FAILED"
    # The kernels run one at a time, so the run's peak is the largest notebook's.
    peaks = [t["peak_rss_mb"] for t in times]
    largest = None if None in peaks else max(peaks, default=None)
    print(f"| all {len(times)} (time: the sum; memory: the largest) | {total:.1f} | {verdict} |"
          f" {memory(largest)} |")
    if done.returncode != 0:
        sys.exit("a notebook failed: its times above do not count")


def memory(mb):
    """The peak-memory and goal cells of a row; /proc's MB are 1024 kB, so GB are 1024 MB."""
    if mb is None:
        return "not measured | "
    return f"{mb / 1024:.2f} | {goal(mb / 1024, MEMORY_GOAL_GB, 'GB')}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-notebooks", action="store_true",
                        help="skip running every notebook (about 25 minutes)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the training-step comparison (default 3)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    timings = measure(args.rounds)
    steps_table(timings, args.rounds)
    conv_table(timings)
    kernel_table()
    if not args.no_notebooks:
        notebooks_table()


if __name__ == "__main__":
    main()
