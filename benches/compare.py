"""`make bench`: the course's speed, in three tables.

1. Training steps and layers: the crate's benchmarks (benches/course.rs) and, when PyTorch
   is installed, the same cases in PyTorch on the same machine and thread count, with the
   ratio ours / PyTorch (below 1: we are faster): medians of `--rounds` rounds (3) in which
   the two sides take turns. PyTorch is opt-in and large (about 5 GB with its CUDA
   libraries): `make bench-torch` installs it into target/torch-venv.
2. What a learner waits for in the Rust kernel (benches/kernel.py).
3. Each notebook's run time in the headless runner, which runs them all (about 10 minutes;
   `--no-notebooks` skips it).

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

TORCH_PYTHON = os.path.join("target", "torch-venv", "bin", "python")
JUPYTER_PYTHON = os.environ.get("MUSTKNOW_PYTHON", os.path.join(".venv", "bin", "python"))
TIMES = os.path.join("target", "notebooks", "times.json")
# The goals for a learner's waits, in seconds.
WARM_SETUP_GOAL_S = 10
TRIVIAL_GOAL_S = 1
NOTEBOOK_GOAL_S = 180


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


def steps_table(rounds):
    run(["cargo", "bench", "--bench", "course", "--no-run"])
    bench = ["cargo", "bench", "--quiet", "--bench", "course", "--"]
    cases = json.loads(run(bench + ["--cases"]))
    if not os.path.exists(TORCH_PYTHON):
        ours = json.loads(run(bench + ["--json"]))
        print(f"{cpu_name()}, {os.cpu_count()} cores; {ours['threads']} threads\n")
        print("| case | ours, ms |\n| --- | ---: |")
        for r in ours["results"]:
            print(f"| {r['name']} | {r['ms']:.2f} |")
        print("\nPyTorch is not installed, so there is nothing to compare with: `make bench-torch`"
              " installs it (about 5 GB) into target/torch-venv, then run `make bench` again.")
        return
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
    print(f"{cpu_name()}, {os.cpu_count()} cores; {threads} threads on both sides;"
          f" medians of {rounds} rounds, the sides taking turns op by op\n")
    print(f"| case | ours, ms | PyTorch {version}, ms | ours / PyTorch | each round |")
    print("| --- | ---: | ---: | ---: | --- |")
    for c in cases:
        a, b = ours[c["name"]], theirs[c["name"]]
        each = " / ".join(f"{x / y:.2f}" for x, y in zip(a, b))
        print(f"| {c['name']} | {statistics.median(a):.2f} | {statistics.median(b):.2f} |"
              f" {statistics.median(a) / statistics.median(b):.2f} | {each} |")


def goal(seconds, limit):
    return f"≤ {limit} s: {'met' if seconds <= limit else 'NOT met'}"


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
        target = goal(warm[key], limit) if limit else ""
        print(f"| {name} | {first[key]:.2f} | {warm[key]:.2f} | {target} |")


def notebooks_table():
    env = dict(os.environ, MUSTKNOW_PYTHON=JUPYTER_PYTHON)
    done = subprocess.run(["cargo", "test", "--release", "--test", "notebooks"], env=env)
    if not os.path.exists(TIMES):
        sys.exit(f"the notebook runner wrote no {TIMES}")
    with open(TIMES) as f:
        times = json.load(f)
    print("\nEach notebook in the headless runner, one warm kernel after another (seconds):\n")
    print("| notebook | run time | goal |\n| --- | ---: | --- |")
    for t in times:
        verdict = goal(t["seconds"], NOTEBOOK_GOAL_S) if t["passed"] else "FAILED"
        print(f"| {t['notebook']} | {t['seconds']:.1f} | {verdict} |")
    if done.returncode != 0:
        sys.exit("a notebook failed: its times above do not count")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-notebooks", action="store_true",
                        help="skip running every notebook (about 10 minutes)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the training-step comparison (default 3)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    steps_table(args.rounds)
    kernel_table()
    if not args.no_notebooks:
        notebooks_table()


if __name__ == "__main__":
    main()
