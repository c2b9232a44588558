"""Print the commands of the README's "Set up" block, one per line.

The block is the first ```bash fence under the "## Set up" heading; its lines
that are neither blank nor comments are the commands. .ci/run runs each of
them verbatim, so what the README tells a newcomer is what CI checks. Exits
with status 1 (and says why) when the section, the block or any command is
missing.

    python tools/readme_setup_commands.py [README.md]
"""

import os
import re
import sys

SECTION = "Set up"


def setup_commands(text):
    """The command lines of the first bash block of the section, or a ValueError."""
    section = re.search(rf"^## {re.escape(SECTION)}[ \t]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if section is None:
        raise ValueError(f'no "## {SECTION}" section')
    block = re.search(r"^```bash[ \t]*\n(.*?)^```", section.group(1), flags=re.M | re.S)
    if block is None:
        raise ValueError(f'no ```bash block in the "{SECTION}" section')
    commands = [line.strip() for line in block.group(1).splitlines()]
    commands = [line for line in commands if line and not line.startswith("#")]
    if not commands:
        raise ValueError(f'the ```bash block of the "{SECTION}" section has no command')
    return commands


def main(argv):
    path = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        commands = setup_commands(text)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
