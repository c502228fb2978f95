"""A tiny name -> component registry: strings live at the edge (config), classes behind it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from gptlab.errors import ConfigError, UserError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise UserError(f"{self.kind} '{name}' is registered twice", key=self.kind,
                                fix="give the component another name")
            self._items[name] = item
            return item
        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} '{name}'", key=self.kind,
                              fix=closest(name, self._items)) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
