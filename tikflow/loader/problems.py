"""What the loader reports: `Problem`s located in the file, and the positions it locates them by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DataPath", "Document", "Problem", "RecipeError"]

#: Where a value sits in the recipe's data: keys and indexes from the top.
DataPath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a recipe, located in its file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RecipeError(Exception):
    """A recipe is invalid; `problems` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        # Aliases can report one problem many times over; it is shown once.
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Document:
    """The positions of a recipe's values and keys (built with its data), and the problems found."""

    file: str
    positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def at(self, path: DataPath, message: str, *, key: bool = False) -> None:
        """Record a problem at the node of `path` (or the nearest ancestor that has one)."""
        line, col = self.position(path, key=key)
        self.problems.append(Problem(self.file, line, col, message))

    def position(self, path: DataPath, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value (or key) at `path`."""
        probe = tuple(path)
        if key and probe in self.key_positions:
            return self.key_positions[probe]
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))
