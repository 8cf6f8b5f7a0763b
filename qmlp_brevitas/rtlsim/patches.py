"""Source patches applied to copies of FINN's HDL before a Verilator build.

The patches are package data (``verilator_patches/*.patch`` beside this module, explained in its
README) and are applied to the per-layer copies of the generated HDL, never to the installed
finn-plus package. A hunk is applied by exact text replacement and must match the file exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qmlp_brevitas.errors import QMLPError

DEFAULT_PATCH_DIR = Path(__file__).resolve().parent / "verilator_patches"


class PatchError(QMLPError, RuntimeError):
    """A patch that cannot be read or does not apply to FINN's file."""


@dataclass(frozen=True)
class SourcePatch:
    """A unified diff against one file, identified by the file's base name."""

    path: Path
    target: str
    hunks: tuple[tuple[str, str], ...]

    def apply(self, text: str, source: Path) -> str:
        """Return ``text`` with every hunk applied; each hunk must match exactly once."""
        for old, new in self.hunks:
            count = text.count(old)
            if count != 1:
                raise PatchError(
                    f"patch {self.path.name} does not apply to {source} (hunk context found "
                    f"{count} times, expected once): FINN's {self.target} has changed; update "
                    f"the patch in {self.path.parent}"
                )
            text = text.replace(old, new)
        return text


def parse_patch(path: Path) -> SourcePatch:
    """Parse a single-file unified diff into (old, new) text blocks per hunk."""
    lines = path.read_text().splitlines(keepends=True)
    target = ""
    hunks: list[tuple[str, str]] = []
    old: list[str] = []
    new: list[str] = []
    in_hunk = False
    for line in lines:
        if line.startswith("+++ "):
            target = Path(line[4:].strip().split("\t")[0]).name
        elif line.startswith("--- "):
            continue
        elif line.startswith("@@"):
            if in_hunk:
                hunks.append(("".join(old), "".join(new)))
            old, new, in_hunk = [], [], True
        elif in_hunk:
            body = line[1:] if line[:1] in (" ", "-", "+") else line
            if line.startswith(" ") or line in ("\n",):
                old.append(body)
                new.append(body)
            elif line.startswith("-"):
                old.append(body)
            elif line.startswith("+"):
                new.append(body)
    if in_hunk:
        hunks.append(("".join(old), "".join(new)))
    if not target or not hunks:
        raise PatchError(f"{path} is not a unified diff with a '+++ b/<file>' header and hunks")
    return SourcePatch(path=path, target=target, hunks=tuple(hunks))


def load_patches(patch_dir: Path | None = None) -> list[SourcePatch]:
    """Read every ``*.patch`` in ``patch_dir`` (default: the package's ``verilator_patches``)."""
    patch_dir = Path(patch_dir) if patch_dir is not None else DEFAULT_PATCH_DIR
    if not patch_dir.is_dir():
        raise PatchError(
            f"patch folder {patch_dir} does not exist; it holds the Verilator patches for "
            "FINN's HDL (see qmlp_brevitas/rtlsim/verilator_patches/README.md)"
        )
    return [parse_patch(p) for p in sorted(patch_dir.glob("*.patch"))]


def apply_patches(files: list[Path], patches: list[SourcePatch]) -> list[str]:
    """Patch the copied ``files`` in place; return the names of the patches applied."""
    applied = []
    for patch in patches:
        for file in files:
            if file.name == patch.target:
                file.write_text(patch.apply(file.read_text(), file))
                applied.append(f"{patch.path.name} -> {file.name}")
    return applied
