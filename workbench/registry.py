"""One registry type for every extension point: model backends, row schemas, refusal judges, artifact
kinds, probe builders, dashboard views, interpretability tools and CLI commands.

A registry refuses a second entry under a name already taken, answers an unknown name with the
closest known ones, and can discover its entries: given a package, it imports every public module
in it once, so adding a backend (or judge, or tool) is one new file that registers itself.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from workbench.errors import WorkbenchError

T = TypeVar("T")


class UnknownName(WorkbenchError):
    """A name the registry does not hold (the message lists the close ones)."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    help: str = ""


class Registry(Generic[T]):
    """Name -> object, filled by `@registry.register(name)` in the modules of `package`."""

    def __init__(self, what: str, *, package: str | None = None,
                 error: type[WorkbenchError] = UnknownName) -> None:
        self.what, self.package, self.error = what, package, error
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = package is None

    @overload
    def register(self, name: str, obj: None = None, *, help: str = "") -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T, *, help: str = "") -> T: ...

    def register(self, name: str, obj: T | None = None, *, help: str = ""):
        """Register `obj` as `name` (or use as a decorator); a different object under a taken name is refused."""

        def add(value: T) -> T:
            old = self._entries.get(name)
            if old is not None and not _same(old.obj, value):
                raise ValueError(f"{self.what} {name!r} is already registered by {_identity(old.obj)}")
            self._entries[name] = Entry(name, value, help or _first_line(value))
            return value

        return add if obj is None else add(obj)

    def discover(self) -> None:
        """Import every public module of the package once (each registers its entries)."""
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)  # type: ignore[arg-type]
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str) -> T:
        """The object registered as `name`; the registry's error, naming close matches, if none is."""
        self.discover()
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names()) or 'none'}"
            raise self.error(f"unknown {self.what} {name!r}{hint}")
        return self._entries[name].obj

    def entries(self) -> list[Entry[T]]:
        self.discover()
        return [self._entries[n] for n in sorted(self._entries)]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)


def _identity(obj: object) -> str:
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


def _same(old: object, new: object) -> bool:
    """A function or class re-registered by a re-import of its module is the same entry."""
    if hasattr(old, "__qualname__") and hasattr(new, "__qualname__"):
        return _identity(old) == _identity(new)
    return old is new or old == new


def _first_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "") if hasattr(obj, "__qualname__") else ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
