"""What the README says that could go stale: its configuration table lists every choice of
every group in conf/ (and nothing else), every page it or docs/ links to exists, and it
stays the door (the depth is in docs/)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# the table's group -> its folder under conf/, and choices Hydra has without a file
GROUPS = {"+experiment": "experiment", "hydra/launcher": "hydra/launcher"}
BUILT_IN = {"hydra/launcher": {"basic"}}


def configuration_table() -> dict[str, set[str]]:
    """{group: its choices} from the README's configuration table."""
    text = README.read_text()
    section = text[text.index("## Configuration"):]
    table = next(block for block in section.split("\n\n") if block.startswith("| group |"))
    rows = {}
    for line in table.splitlines()[2:]:
        group, choices = [cell.strip() for cell in line.strip("|").split("|")][:2]
        rows[group.strip("`")] = set(re.findall(r"`([\w/]+)`", choices))
    return rows


def test_the_configuration_table_lists_every_choice_in_conf():
    table = configuration_table()
    groups = {p.name for p in (ROOT / "conf").iterdir()
              if p.is_dir() and p.name not in ("hydra", "__pycache__")}
    assert set(table) == (groups - {"experiment"}) | set(GROUPS)
    for group, choices in table.items():
        folder = ROOT / "conf" / GROUPS.get(group, group)
        in_conf = {p.stem for p in folder.glob("*.yaml")} | BUILT_IN.get(group, set())
        assert choices == in_conf, group


def test_every_page_the_docs_link_to_exists():
    pages = [README, *(ROOT / "docs").glob("*.md")]
    assert len(pages) > 5
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\(docs/([\w-]+\.md)\)", README.read_text()))
    assert linked == {p.name for p in (ROOT / "docs").glob("*.md")}


def test_the_readme_is_a_door_not_a_notebook():
    assert len(README.read_text().splitlines()) <= 350
