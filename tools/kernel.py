"""Starts the Rust kernel (evcxr_jupyter) the way the course needs it.

evcxr builds each cell, and the crates it loads, in a build folder. Its default is a new
temporary folder per kernel, so every kernel compiled the course's crate again (a minute
or more on 2 cores): evcxr's compile cache (`:cache`) keeps registry crates only, not a
crate loaded by path. This launcher gives each kernel one of a few build folders under
target/evcxr-lab/ that outlive it, locked while the kernel runs: the next kernel finds the
crate compiled, and kernels open at the same time get different folders. A build folder
already chosen (EVCXR_TMPDIR, as the headless runner sets) is kept.

It also turns off Cargo's debug assertions and overflow checks, which evcxr's build profile
turns on and which made training cells 2 to 4 times slower than a release build; and it
puts the crate's Cargo.lock in the build folder, so that notebooks build the dependency
versions `cargo test` checked (and dfdx's gemm patched by .cargo/config.toml) rather than
whatever evcxr resolved when the folder was new.

And it keeps evcxr's compile cache (`:cache`) inside this checkout, in target/evcxr-cache/,
instead of the user's ~/.cache/evcxr. A cache entry holds a crate's compiled files with the
dependency list rustc wrote, which names the build folder the entry was compiled in. Restored
from a folder that no longer exists (another clone, a deleted worktree), that list names
missing files, so Cargo rebuilt those crates, restored them from the cache again, and
recompiled the course's crate on every cell: measured, a trivial cell took 11 s instead of
0.8, and a notebook twice its time. Here every entry comes from a build folder of this
checkout, and `cargo clean` removes both together.

It leaves on Cargo's incremental compilation, which evcxr's profile also turns on: turning it
off gained nothing measurable, and evcxr's compile cache keys a crate on its rustc arguments
alone and leaves out only incremental builds, so without it a cell's crate came back from
the cache as an earlier cell's code (measured in BENCHMARKS.md).

`python tools/kernel.py --install KERNEL_JSON` points an installed kernel spec at this
launcher (`make setup` does it); Jupyter then runs `python tools/kernel.py EVCXR ARGS...`.
"""
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ROOT / "target" / "evcxr-lab"
# evcxr keeps its compile cache under $XDG_CACHE_HOME/evcxr.
CACHE_HOME = ROOT / "target" / "evcxr-cache"
# Kernels open at once that each get a warm folder; one more gets a fresh temporary one.
SLOTS = 4
RELEASE_SPEED = {
    "CARGO_PROFILE_DEV_DEBUG_ASSERTIONS": "false",
    "CARGO_PROFILE_DEV_OVERFLOW_CHECKS": "false",
}


def claim_build_folder():
    """The first build folder no running kernel holds, locked until this process ends."""
    FOLDERS.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        lock = os.open(FOLDERS / f"{slot}.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        # The lock stays open through exec, so it is held as long as the kernel runs.
        os.set_inheritable(lock, True)
        return FOLDERS / str(slot)
    return None


def launch(command):
    for name, value in RELEASE_SPEED.items():
        os.environ.setdefault(name, value)
    os.environ["XDG_CACHE_HOME"] = str(CACHE_HOME)
    if "EVCXR_TMPDIR" not in os.environ:
        folder = claim_build_folder()
        if folder is not None:
            os.environ["EVCXR_TMPDIR"] = str(folder)
    if "EVCXR_TMPDIR" in os.environ:
        pin_dependencies(Path(os.environ["EVCXR_TMPDIR"]))
    os.execvp(command[0], command)


def pin_dependencies(folder):
    """The crate's Cargo.lock in evcxr's build folder: cargo keeps its versions."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "Cargo.lock", folder / "Cargo.lock")


def install(spec_path):
    """Rewrites an evcxr kernel spec so that Jupyter starts evcxr through this launcher."""
    spec = json.loads(Path(spec_path).read_text())
    argv = spec["argv"]
    if argv[1:2] == [str(Path(__file__).resolve())]:
        argv = argv[2:]
    spec["argv"] = [sys.executable, str(Path(__file__).resolve())] + argv
    Path(spec_path).write_text(json.dumps(spec, indent=2) + "\n")


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--install":
        install(args[1])
    elif args:
        launch(args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
