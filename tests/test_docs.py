"""The documentation: a short README, the four files of docs/, the method sections the sources cite,
links that resolve, and the seed README's commands and options shown in docs/usage.md as they work."""
import os
import re

import pytest

import options
from tests.conftest import REPO
from tests.helpers import SEED_OPTIONS

README = os.path.join(REPO, "README.md")
DOCS = os.path.join(REPO, "docs")
DOC_FILES = ("method.md", "usage.md", "results.md", "architecture.md")
MAX_README_LINES = 150


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def markdown_files():
    return [README] + [os.path.join(DOCS, name) for name in sorted(os.listdir(DOCS)) if name.endswith(".md")]


def without_code_blocks(text):
    """The text with fenced code blocks blanked out (a '#' line in a shell block is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def shell_blocks(text):
    return re.findall(r"^```shell\n(.*?)^```", text, flags=re.S | re.M)


# ------------------------------------------------------------------------------------------ README

def test_readme_is_short():
    assert len(read(README).splitlines()) <= MAX_README_LINES


def test_readme_set_up_is_make_demo_and_make_test():
    """The README's first code block is the set-up: exactly ``make demo`` and ``make test``, and the
    Makefile has both targets."""
    first = shell_blocks(read(README))[0]
    commands = [line.split("#", 1)[0].strip() for line in first.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    targets = re.findall(r"^([\w-]+):", read(os.path.join(REPO, "Makefile")), flags=re.M)
    assert "demo" in targets and "test" in targets


def test_the_docs_files_exist():
    for name in DOC_FILES:
        path = os.path.join(DOCS, name)
        assert os.path.isfile(path), f"docs/{name} is missing"
        assert read(path).strip(), f"docs/{name} is empty"


# ------------------------------------------------------------------------------------------ method.md

def method_sections(text):
    """Section numbers of docs/method.md: headings ``## 5. ...`` -> "5", ``### 5.1 ...`` -> "5.1", and
    the numbered list items ``22. ...`` of a section without numbered sub-headings ->
    "13.22"."""
    found, items = set(), {}
    top, has_sub = None, {}
    for line in without_code_blocks(text).splitlines():
        heading = re.match(r"#{1,6}\s+(\d+)(?:\.(\d+))?\.?\s", line)
        if heading:
            if heading.group(2) is None:
                top = heading.group(1)
                found.add(top)
            else:
                found.add(f"{heading.group(1)}.{heading.group(2)}")
                has_sub[heading.group(1)] = True
            continue
        item = re.match(r"(\d+)\.\s", line)
        if item and top is not None:
            items.setdefault(top, set()).add(item.group(1))
    for top, numbers in items.items():
        if not has_sub.get(top):
            found.update(f"{top}.{n}" for n in numbers)
    return found


def cited_sections():
    """{section: [files citing it]} for every "§N" / "§N.M" in the project's .py and .sh files (in
    this project a section sign always cites docs/method.md, also in chains such as
    "method.md §5.1-§5.4, §5.6")."""
    cited = {}
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "docs")]
        for name in files:
            if name.endswith((".py", ".sh")):
                path = os.path.join(root, name)
                for number in re.findall(r"§(\d+(?:\.\d+)?)", read(path)):
                    cited.setdefault(number, []).append(os.path.relpath(path, REPO))
    return cited


def test_method_sections_are_found_as_headings_and_items():
    text = "## 5. Architectures\n### 5.1 ResNet\n```shell\n## 9. not a heading\n```\n## 13. Where\n1. one\n22. two\n"
    assert method_sections(text) == {"5", "5.1", "13", "13.1", "13.22"}


def test_every_cited_method_section_resolves():
    cited = cited_sections()
    assert "13.22" in cited and "5.1" in cited  # the scan finds the sources' citations
    sections = method_sections(read(os.path.join(DOCS, "method.md")))
    missing = {number: sorted(set(files)) for number, files in cited.items() if number not in sections}
    assert not missing, f"docs/method.md has no section for: {missing}"


# ------------------------------------------------------------------------------------------ links

def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' dropped, spaces -> '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    seen, found = {}, set()
    for line in without_code_blocks(read(path)).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return found


def relative_links(path):
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", without_code_blocks(read(path)))
    return [link for link in links if not re.match(r"[a-z]+:", link)]


def test_slugs_follow_github():
    assert slug("Continuing a run, run folders and --overwrite") == "continuing-a-run-run-folders-and---overwrite"
    assert slug("12.2 Counting conventions") == "122-counting-conventions"
    assert slug('Separable-convolution ("mobile") generators') == "separable-convolution-mobile-generators"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_every_relative_link_resolves(path):
    bad = []
    for link in relative_links(path):
        target, _, anchor = link.partition("#")
        file = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        if not os.path.exists(file):
            bad.append(f"{link}: no such file")
        elif anchor and file.endswith(".md") and anchor not in anchors(file):
            bad.append(f"{link}: no heading with that anchor")
    assert not bad, f"{os.path.relpath(path, REPO)}: {bad}"


# ------------------------------------------------------------------------------------------ usage.md

def test_usage_shows_every_option_of_the_seed_readme():
    usage = read(os.path.join(DOCS, "usage.md"))
    missing = [name for name in SEED_OPTIONS if f"`--{name}`" not in usage]
    assert not missing


def seed_layout_commands(text):
    """(script, argv) of every shell block in the seed README's layout: ``python <script>.py`` alone on
    the first line, then options (a blank line separates the search or fine-tune part)."""
    found = []
    for block in shell_blocks(text):
        lines = block.strip().splitlines()
        first = re.fullmatch(r"python (train|test|prune)\.py", lines[0].strip()) if lines else None
        if first:
            found.append((first.group(1), [a for line in lines[1:] for a in line.split()]))
    return found


def test_the_seed_readme_commands_in_usage_parse_as_written():
    """Every command of the seed README shown in docs/usage.md parses, and reports no option as without
    effect, except test.py's --mask (test.py reads the architecture from the checkpoint)."""
    commands = seed_layout_commands(read(os.path.join(DOCS, "usage.md")))
    scripts = [script for script, _ in commands]
    assert scripts.count("train") >= 4 and "test" in scripts and "prune" in scripts
    for script, argv in commands:
        opt = options.parse(script, argv)
        ignored = [flag for flag, _ in options.ignored_options(opt)]
        assert ignored == (["--mask"] if script == "test" else []), (script, argv)
