"""Rewrite the option tables of the docs pages from the declared options and the shipped YAML.

A page marks each table with a pair of comments; everything between them is generated:

    <!-- options: ballad -->            the method's every option (value, source, what it takes,
    <!-- /options -->                   meaning, the YAML's why, its per_dataset / per_backbone values)
    <!-- options: decoder_bs vs decoder -->   only what a variant changes
    <!-- options: common -->             the options every method has (Method's)

    python docs/methods/make_option_tables.py          # rewrite the blocks of docs/**/*.md
    python docs/methods/make_option_tables.py --check  # exit 1 naming each page that is out of date

tests/config/test_option_tables.py runs the check, so a changed option or YAML value fails the tests
until the pages are regenerated.
"""
import argparse
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- options: ([\w-]+)(?: vs ([\w-]+))? -->\n)(.*?)(<!-- /options -->)", re.S)


def table(method: str, base: str = None) -> str:
    from ltbench.config.describe import COMMON_NAME, common_rows, differing_rows, markdown_table, option_rows

    if method == COMMON_NAME:
        from ltbench.engine.method import Method

        return markdown_table(common_rows(Method))
    rows = differing_rows(method, base) if base else option_rows(method)
    if not rows:
        return f"The options and values of `{base}`." if base else "No options besides the common ones."
    return markdown_table(rows)


def rendered(text: str) -> str:
    return BLOCK.sub(lambda match: f"{match.group(1)}{table(match.group(2), match.group(3))}\n{match.group(5)}", text)


def pages():
    return sorted(path for path in DOCS.rglob("*.md") if BLOCK.search(path.read_text()))


def stale_pages() -> list:
    """The pages whose blocks differ from what the options and YAML give now."""
    return [path for path in pages() if rendered(path.read_text()) != path.read_text()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="name the pages that are out of date; change nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for path in stale:
            print(f"{path.relative_to(DOCS.parent)}: option tables out of date; run python {Path(__file__).relative_to(DOCS.parent)}")
        return 1 if stale else 0
    for path in pages():
        text = path.read_text()
        new = rendered(text)
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
