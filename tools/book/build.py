"""Builds the course as a book: a static site in target/book/ (`make book`).

The chapters are the executed copies of the notebooks that the headless runner writes to
target/notebooks/; a copy that is missing, older than its notebook, or from a failed run is
made again first, by the runner. Sphinx with MyST-NB and the book theme (Jupyter Book's own
engine) renders them; this script only prepares its sources in target/book-src/:

- `index.md`, the landing page: the course's summary and two commands, from the README, and
  the README's course map, each item linked to the sections that teach it, with its headline
  check and the value measured in this run (from the notebook's summary table of checks);
- each executed notebook, with a line under its title linking the stored notebook and the
  crate module behind it, section targets for the course map, and its links to the crate's
  source files pointed at the book's own pages of that source;
- `crate/<module>.md`, the source of each top-level module of `src/`, and `benchmarks.md`.
"""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "target" / "notebooks"
SOURCES = ROOT / "target" / "book-src"
SITE = ROOT / "target" / "book"


class BookError(Exception):
    """A problem that stops the build, said with its fix."""


def main():
    start = time.monotonic()
    try:
        chapters = executed_chapters()
        write_sources(chapters)
        render()
    except BookError as problem:
        print(f"make book: {problem}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in SITE.rglob("*") if f.is_file())
    print(f"book: {len(chapters)} chapters, {size / 1e6:.1f} MB, built in "
          f"{time.monotonic() - start:.0f} s: open {SITE / 'index.html'}")
    return 0


# --- The executed notebooks ------------------------------------------------------------

def executed_chapters():
    """Every course notebook's executed copy, run again first where it is not current."""
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    stale = [nb.stem for nb in notebooks if not current(nb)]
    for stem in stale:
        print(f"book: running {stem} first (its executed copy is missing, older than the "
              "notebook, or from a failed run)", flush=True)
        subprocess.run(["cargo", "test", "--release", "--test", "notebooks", "--", stem],
                       cwd=ROOT, check=False)
        if not current(NOTEBOOKS / f"{stem}.ipynb"):
            raise BookError(f"notebook {stem} did not pass the runner, so it cannot be a "
                            "chapter: fix it (the runner's line above says why), then run "
                            "make book again")
    return {nb.stem: json.loads((EXECUTED / nb.name).read_text(encoding="utf-8"))
            for nb in notebooks}


def current(notebook):
    """Whether the runner's executed copy is newer than the notebook and passed."""
    copy = EXECUTED / notebook.name
    if not copy.exists() or copy.stat().st_mtime < notebook.stat().st_mtime:
        return False
    run = json.loads(copy.read_text(encoding="utf-8"))["metadata"].get("mustknow", {})
    return run.get("run", {}).get("ok") is True


# --- Sources for Sphinx ----------------------------------------------------------------

def write_sources(chapters):
    if SOURCES.exists():
        shutil.rmtree(SOURCES)
    (SOURCES / "crate").mkdir(parents=True)
    shutil.copytree(NOTEBOOKS, SOURCES / "_notebooks", ignore=shutil.ignore_patterns(".*"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    modules = crate_modules(readme)
    for stem, chapter in chapters.items():
        write_chapter(stem, chapter, modules)
    for module in modules.values():
        write_module_page(module)
    shared = sorted(set(top_level_modules()) - set(modules.values()))
    for module in shared:
        write_module_page(module)
    (SOURCES / "benchmarks.md").write_text(
        (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"), encoding="utf-8")
    (SOURCES / "index.md").write_text(
        landing_page(readme, chapters, list(modules.values()) + shared), encoding="utf-8")


def crate_modules(readme):
    """Notebook stem → the crate module it teaches, as the README's layout lists them."""
    pairs = re.findall(r"`src/(\w+)(?:\.rs|/)`\s+is\s+`(?:notebooks/)?(\d\d_\w+?)(?:\.ipynb)?`",
                       readme)
    if not pairs:
        raise BookError("the README no longer says which src/ module each notebook uses "
                        "(\"`src/theory/` is `11_theory`\"): restore that list")
    return {stem: module for module, stem in pairs}


def top_level_modules():
    """The crate's top-level modules: src/NAME.rs or src/NAME/, except lib.rs and bin/."""
    names = [p.stem for p in (ROOT / "src").glob("*.rs") if p.stem not in ("lib", "main")]
    names += [p.name for p in (ROOT / "src").iterdir() if p.is_dir() and p.name != "bin"]
    return sorted(names)


def module_files(module):
    single = ROOT / "src" / f"{module}.rs"
    if single.exists():
        return [single]
    folder = ROOT / "src" / module
    return sorted(folder.rglob("*.rs"), key=lambda p: (p.name != "mod.rs", str(p)))


def source_label(path):
    """The book's target for one source file: src/theory/pca.rs → src-theory-pca-rs."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def write_module_page(module):
    lines = [f"(crate-{module})=", f"# `mustknow::{module}`", ""]
    for path in module_files(module):
        rel = path.relative_to(ROOT).as_posix()
        lines += [f"({source_label(rel)})=", f"## `{rel}`", "",
                  "```{literalinclude} " + os.path.relpath(path, SOURCES / "crate"),
                  ":language: rust", "```", ""]
    (SOURCES / "crate" / f"{module}.md").write_text("\n".join(lines), encoding="utf-8")


def write_chapter(stem, chapter, modules):
    """The executed notebook, with its links pointed into the book and a line on its sources."""
    run = chapter["metadata"]["mustknow"]["run"]
    for cell in chapter["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = book_markdown("".join(cell["source"]), stem)
    if stem not in modules:
        raise BookError(f"the README's layout does not say which src/ module {stem} uses "
                        f"(\"`src/<module>/` is `{stem}`\"): add it")
    module = modules[stem]
    seed = f"seed {run['seed']}" if run.get("seed") else "its default seed"
    line = (f"*This chapter is the notebook as the course's runner executed it, at {seed}, "
            f"every check passing, in {run['seconds']:.0f} s. To run it yourself: "
            f"{{download}}`{stem}.ipynb <_notebooks/{stem}.ipynb>` (`make lab` opens it); "
            f"its code is the crate module [`mustknow::{module}`](#crate-{module}).*")
    note = {"cell_type": "markdown", "metadata": {}, "source": line}
    if (chapter["nbformat"], chapter["nbformat_minor"]) >= (4, 5):
        note["id"] = "book-sources"
    chapter["cells"].insert(1, note)
    (SOURCES / f"{stem}.ipynb").write_text(json.dumps(chapter), encoding="utf-8")


def book_markdown(text, stem):
    """A markdown cell for the book: section targets, and links to files of the repository
    pointed at their pages in the book."""
    number = stem[:2]
    text = re.sub(r"^# ", f"({chapter_label(number)})=\n# ", text, count=1, flags=re.M)
    text = re.sub(r"^## (\d+)\. ", lambda m: f"({section_label(number, m[1])})=\n## {m[1]}. ",
                  text, flags=re.M)
    text = re.sub(r"\]\(\.\./(src/[^)#]+\.rs)\)", lambda m: f"](#{source_label(m[1])})", text)
    return text.replace("](../BENCHMARKS.md)", "](benchmarks.md)")


def chapter_label(number):
    """The target of notebook `number`'s title: nb11."""
    return f"nb{number}"


def section_label(number, section):
    """The target of a numbered section: nb11-s3 for notebook 11's "## 3. ..."."""
    return f"nb{number}-s{section}"


# --- The landing page ------------------------------------------------------------------

def landing_page(readme, chapters, modules):
    summary = readme_part(readme, None).split("\n\n")[1]
    commands = re.search(r"```sh\n.*?```", readme_part(readme, "Two commands"), re.S)[0]
    checks = {stem: summary_checks(stem, chapter) for stem, chapter in chapters.items()}
    map_tables = [course_map_table(t, checks) for t in course_map(readme)]
    chapter_list = "\n".join(chapters)
    module_list = "\n".join(f"crate/{m}" for m in modules)
    return f"""# mustknow: the machine-learning must-knows, run and checked

{summary}

Every chapter below is a notebook as the course's runner executed it: the idea and the
paper, the experiment, its figures, and the `assert!`s that check the headline effect on a
measured number, with a table of every check at the end. To run them yourself, on Linux
with Rust and Python 3:

{commands}

## Course map

Where each must-know is taught, with the check of its headline effect and the number this
run measured.

{map_tables[0]}

{map_tables[1]}

```{{toctree}}
:caption: Notebooks
:maxdepth: 1

{chapter_list}
```

```{{toctree}}
:caption: The crate's source
:maxdepth: 1

{module_list}
```

```{{toctree}}
:caption: Speed
:maxdepth: 1

benchmarks
```
"""


def readme_part(readme, heading):
    """The README's text under `## heading` (None: before the first one)."""
    parts = re.split(r"^## ", readme, flags=re.M)
    if heading is None:
        return parts[0]
    for part in parts[1:]:
        if part.startswith(heading + "\n"):
            return part
    raise BookError(f"the README has no section \"## {heading}\", which the book's landing "
                    "page quotes: restore it, or change tools/book/build.py with it")


def course_map(readme):
    """The README's course-map tables, as (header, rows) with rows of (item, where, headline):
    the must-know, the notebook sections that teach it ('05 §6–§7, 06 §6'), and the check
    that shows its headline effect, as its notebook's summary words it ('05 §7 ...')."""
    tables = []
    for block in re.findall(r"(?:^\|.*\|\n)+", readme_part(readme, "Course map"), re.M):
        rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
                for line in block.strip().split("\n")]
        tables.append((rows[0], rows[2:]))
    if len(tables) != 2 or any(len(row) != 3 for _, rows in tables for row in rows):
        raise BookError("the README's course map should be two tables (papers, concepts) of "
                        "three columns: the must-know, its notebook sections, its headline check")
    return tables


def taught_in(where):
    """'05 §6–§7, 06 §6' → [('05', [6, 7]), ('06', [6])]; '01' → [('01', [])]."""
    places = []
    for part in re.split(r"[,;]\s*", where):
        match = re.fullmatch(r"(?:(\d\d)\s*)?(?:§(\d+)(?:–§(\d+))?)?", part.strip())
        if not match or not (match[1] or match[2]):
            raise BookError(f"cannot read the course map's place {where!r}")
        notebook = match[1] or places[-1][0]
        sections = list(range(int(match[2]), int(match[3] or match[2]) + 1)) if match[2] else []
        places.append((notebook, sections))
    return places


def course_map_table(table, checks):
    (item_header, *_), rows = table
    lines = [f"| {item_header} | taught in | headline check | measured (required) |",
             "| --- | --- | --- | --- |"]
    for item, where, named in rows:
        places = taught_in(where)
        links = ", ".join(place_links(nb, sections) for nb, sections in places)
        claim, measured, required = headline(checks, places, named)
        lines.append(f"| {item} | {links} | {cell(claim)} | {measured} ({cell(required)}) |")
    return "\n".join(lines)


def place_links(notebook, sections):
    if not sections:
        return f"[{notebook}](#{chapter_label(notebook)})"
    return f"{notebook} " + ", ".join(f"[§{s}](#{section_label(notebook, s)})" for s in sections)


def headline(checks, places, named):
    """The row of the summary tables that the course map names, '05 §7 validation / ...'."""
    notebook, section, claim = re.fullmatch(r"(\d\d) (§(\d+) .*)", named.replace("\\|", "|")
                                            ).group(1, 3, 2)
    if not any(nb == notebook and (not s or int(section) in s) for nb, s in places):
        raise BookError(f"the README's course map names the check {named!r} for sections "
                        f"{places} that do not include it: correct the map")
    stem = next((s for s in checks if s.startswith(notebook + "_")), None)
    for row in checks.get(stem, []):
        if row[0] == claim:
            return row
    raise BookError(f"the README's course map names the check {named!r}, which notebook "
                    f"{notebook}'s summary of the checks does not have: use the claim as the "
                    "summary words it")


def cell(text):
    return text.replace("|", "\\|")


class _TableRows(html.parser.HTMLParser):
    """The rows of the crate's HTML tables (`display::Table`), as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row:
            self.rows.append(self._row)
            self._row = None


def summary_checks(stem, chapter):
    """(claim, measured, required) for every row of the notebook's summary of the checks."""
    cells = chapter["cells"]
    start = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                  and "## Summary of the checks" in "".join(c["source"])), None)
    if start is None:
        raise BookError(f"{stem} has no \"## Summary of the checks\" section: "
                        "every chapter ends with the table of its checks")
    rows = []
    for c in cells[start + 1:]:
        if c["cell_type"] != "code":
            break
        for output in c.get("outputs", []):
            table = "".join(output.get("data", {}).get("text/html", ""))
            if "more rows" in table:
                raise BookError(f"{stem}'s summary of the checks hides rows (a table shows "
                                "at most 20): split it into tables by section, as 03 does")
            parser = _TableRows()
            parser.feed(table)
            rows += [tuple(r) for r in parser.rows if len(r) == 3]
    return rows


# --- Sphinx ----------------------------------------------------------------------------

def render():
    """Sphinx, with every warning an error (a broken link or a missing figure fails)."""
    if SITE.exists():
        shutil.rmtree(SITE)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-c", str(Path(__file__).parent), str(SOURCES), str(SITE)]
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise BookError("Sphinx reported the problems above; the book was not built")


if __name__ == "__main__":
    sys.exit(main())
