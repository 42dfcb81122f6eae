"""What `make test` must leave as it found it: the machine's accounts (/etc/passwd, group, shadow,
gshadow), the entries of /home and the /etc/ssh tree. The agent's tests run useradd, write
authorized_keys and sshd drop-ins; they must do so only in a throwaway host.

    host_state.py [--root DIR] snapshot FILE   record the state (after the system packages are in)
    host_state.py [--root DIR] check FILE      exit 1 and print every change since the snapshot

The snapshot holds digests, never a shadow line: FILE may be read by anyone who can read the repo."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import TypedDict

ACCOUNT_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")
# Their lines may be printed in a report; shadow and gshadow lines hold password hashes.
PRINTABLE = ("etc/passwd", "etc/group")
UNREADABLE = "unreadable"


class State(TypedDict):
    # file -> {entry name: sha256 of its line}, or UNREADABLE (shadow as non-root), or None (absent)
    accounts: dict[str, dict[str, str] | str | None]
    home: dict[str, str]  # entry name -> its kind, mode and owner
    ssh: dict[str, str]  # path under etc/ssh -> kind, mode, owner and contents digest


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keyed_lines(path: Path) -> dict[str, str]:
    """The lines of an account file by entry name (its first field); a name seen twice, a comment or a
    blank line is kept under its line number."""
    found: dict[str, str] = {}
    for n, line in enumerate(path.read_bytes().decode(errors="replace").splitlines(), 1):
        name = line.split(":", 1)[0]
        found[name if line and not line.startswith("#") and name not in found else f"{name}@line{n}"] = line
    return found


def entries(path: Path) -> dict[str, str] | str | None:
    """name -> digest of each line of an account file."""
    try:
        return {name: digest(line.encode()) for name, line in keyed_lines(path).items()}
    except FileNotFoundError:
        return None
    except PermissionError:
        return UNREADABLE


def describe(path: Path, contents: bool) -> str:
    """kind, mode and owner of path (not following a link); with contents, a digest of a file's bytes
    and a link's target."""
    st = path.lstat()
    kinds = {stat.S_ISDIR: "dir", stat.S_ISLNK: "link", stat.S_ISREG: "file"}
    kind = next((name for test, name in kinds.items() if test(st.st_mode)), "other")
    text = f"{kind} {stat.S_IMODE(st.st_mode):04o} {st.st_uid}:{st.st_gid}"
    if contents and kind == "link":
        text += f" -> {os.readlink(path)}"
    elif contents and kind == "file":
        try:
            text += f" sha256:{digest(path.read_bytes())}"
        except PermissionError:
            text += f" {UNREADABLE}"
    return text


def tree(top: Path) -> dict[str, str]:
    """Every path under top (top itself as "."), described with its contents."""
    if not top.exists():
        return {}
    found = {".": describe(top, contents=True)}
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(folder) / name
            found[str(path.relative_to(top))] = describe(path, contents=True)
    return found


def snapshot(root: Path) -> State:
    home = root / "home"
    return State(
        accounts={name: entries(root / name) for name in ACCOUNT_FILES},
        home={p.name: describe(p, contents=False) for p in sorted(home.iterdir())} if home.is_dir() else {},
        ssh=tree(root / "etc/ssh"),
    )


def compare(where: str, before: dict[str, str], after: dict[str, str], lines: dict[str, str] | None) -> list[str]:
    """One line per entry added, removed or changed. lines: an account file's lines as they are now
    (the snapshot holds only their digests; {} for shadow files, never printed), or None to print the
    descriptions themselves."""
    found = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if lines is not None:
            what = "added" if old is None else "removed" if new is None else "changed"
            found.append(f"{where}: {what} {key}" + (f": {lines[key]}" if key in lines else ""))
        elif old is None:
            found.append(f"{where}: added {key}: {new}")
        elif new is None:
            found.append(f"{where}: removed {key} (was {old})")
        else:
            found.append(f"{where}: changed {key}: {old} -> {new}")
    return found


def whole(state: dict[str, str] | str | None) -> str:
    return "absent" if state is None else state if isinstance(state, str) else f"{len(state)} entries"


def changes(root: Path, before: State, after: State) -> list[str]:
    """Every difference between two snapshots of root, as lines a person reads."""
    found: list[str] = []
    for name in ACCOUNT_FILES:
        old, new = before["accounts"].get(name), after["accounts"].get(name)
        if isinstance(old, dict) and isinstance(new, dict):
            # Only passwd and group lines are printed: shadow lines hold password hashes.
            shown = keyed_lines(root / name) if name in PRINTABLE else {}
            found += compare(f"/{name}", old, new, shown)
        elif old != new:
            found.append(f"/{name}: was {whole(old)}, now {whole(new)}")
    found += compare("/home", before["home"], after["home"], None)
    found += compare("/etc/ssh", before["ssh"], after["ssh"], None)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/"), help="the machine's root folder (default /)")
    parser.add_argument("action", choices=["snapshot", "check"])
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    root: Path = args.root
    file: Path = args.file
    state = snapshot(root)
    if args.action == "snapshot":
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        print(f"host state: accounts, /home and /etc/ssh of {root} recorded in {file}")  # noqa: T201
        return 0
    before: State = json.loads(file.read_text())
    found = changes(root, before, state)
    if found:
        print(  # noqa: T201
            f"host state: FAILED: the tests changed the accounts, /home or /etc/ssh of {root} (snapshot {file}):\n  "
            + "\n  ".join(found),
            file=sys.stderr,
        )
        return 1
    print(f"host state: the accounts, /home and /etc/ssh of {root} are as the snapshot found them")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
