"""Choice lists of the core, defined once: values for the code, labels for the user.

The Processing algorithms build their enum parameters from these (labels,
translated) and map the chosen index back with :meth:`Choices.value`, so a list
is never copied.
"""
from __future__ import annotations

from typing import Iterator, Tuple

from .errors import UserInputError


class Choices:
    """An ordered list of (value, label) pairs, e.g. ``Choices(("lk", "Lucas-Kanade"), ...)``."""

    def __init__(self, *pairs: Tuple[str, str]):
        self.values: Tuple[str, ...] = tuple(value for value, _ in pairs)
        self.labels: Tuple[str, ...] = tuple(label for _, label in pairs)
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"Duplicate choice values in {self.values}")

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, value) -> bool:
        return value in self.values

    def __repr__(self) -> str:
        return f"Choices{self.values}"

    def index(self, value: str) -> int:
        """Position of ``value`` (for a parameter's default index)."""
        return self.values.index(value)

    def value(self, index: int) -> str:
        """The value at ``index`` (a parameter's chosen index)."""
        if not 0 <= int(index) < len(self.values):
            raise UserInputError(f"Choice {index} does not exist; choose 0..{len(self.values) - 1} "
                                 f"({', '.join(self.values)}).")
        return self.values[int(index)]

    def check(self, value: str, what: str = "choice") -> str:
        """``value`` if it is one of the values, else a clear error naming them."""
        if value not in self.values:
            raise UserInputError(f"Unknown {what} '{value}'; use one of {', '.join(self.values)}.")
        return value
