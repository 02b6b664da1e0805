"""`make bench`: the crate's benchmarks and, when PyTorch is installed, the same cases in
PyTorch on the same machine and thread count, as one table with the ratio ours / PyTorch
(below 1: we are faster).

PyTorch is opt-in and large (about 5 GB with its CUDA libraries): `make bench-torch`
installs it into target/torch-venv. Standard library only, so it runs with any python3.
"""
import json
import os
import platform
import subprocess
import sys

TORCH_PYTHON = os.path.join("target", "torch-venv", "bin", "python")


def run(cmd, stdin=None):
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
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


def main():
    run(["cargo", "bench", "--bench", "course", "--no-run"])
    bench = ["cargo", "bench", "--quiet", "--bench", "course", "--"]
    cases = run(bench + ["--cases"])
    ours = json.loads(run(bench + ["--json"]))
    threads = ours["threads"]
    torch = None
    if os.path.exists(TORCH_PYTHON):
        torch = json.loads(run([TORCH_PYTHON, "benches/torch_course.py", str(threads)], stdin=cases))
    print(f"{cpu_name()}, {os.cpu_count()} cores; {threads} threads on both sides\n")
    if torch is None:
        print("| case | ours, ms |\n| --- | ---: |")
        for r in ours["results"]:
            print(f"| {r['name']} | {r['ms']:.2f} |")
        print(f"\nPyTorch is not installed, so there is nothing to compare with: `make bench-torch`"
              f" installs it (about 5 GB) into target/torch-venv, then run `make bench` again.")
        return
    theirs = {r["name"]: r["ms"] for r in torch["results"]}
    print(f"| case | ours, ms | PyTorch {torch['version']}, ms | ours / PyTorch |")
    print("| --- | ---: | ---: | ---: |")
    for r in ours["results"]:
        t = theirs[r["name"]]
        print(f"| {r['name']} | {r['ms']:.2f} | {t:.2f} | {r['ms'] / t:.2f} |")


if __name__ == "__main__":
    main()
