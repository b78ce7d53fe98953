"""The base of every run's configuration: a frozen dataclass with one dict form and one fingerprint.

A study's config is written into its run directory (``config.json``, ``run.json``) and its
fingerprint decides whether a later invocation may add rows there: the fingerprint hashes every
field that decides a row's values, leaving out ``VARYING`` (the fields that may grow between
invocations, such as the students or the eps grid).
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from typing import Any, ClassVar, Iterable

from fkd.config import Dataset, model_name, parse, resolve_model
from fkd.metrics import Attack
from fkd.units import resolve_units


def _plain(value: Any) -> Any:
    """An enum as its value, a tuple as a list (of values); anything else as it is."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [x.value if isinstance(x, enum.Enum) else x for x in value]
    return value


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Shared behaviour of the runs' frozen configs (no fields of its own)."""

    #: fields left out of the fingerprint: they may differ between invocations into one directory
    VARYING: ClassVar[tuple[str, ...]] = ()
    #: fields added after runs were published: left out of the fingerprint while None (not set), so
    #: a run made before they existed keeps its fingerprint
    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    def _set(self, **values: Any) -> None:
        """Normalise fields in ``__post_init__`` (the dataclass is frozen)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _dataset_units(self) -> Dataset:
        """Normalise ``dataset`` (an enum) and ``units`` (None: the dataset's reading).

        Returns:
            The Dataset.
        """
        d = parse(Dataset, self.dataset)
        self._set(dataset=d, units=resolve_units(self.units, d))
        return d

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values: enums as their values, tuples as lists.

        Returns:
            dict of every field.
        """
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}

    def fingerprint_fields(self) -> dict[str, Any]:
        """The fields the fingerprint hashes: ``to_dict`` less ``VARYING`` and the unset ``OPTIONAL``."""
        return {k: v for k, v in self.to_dict().items()
                if k not in self.VARYING and not (k in self.OPTIONAL and v is None)}

    def fingerprint(self) -> str:
        """Hash of what decides a row's values.

        Returns:
            16 hex digits of the sha256 of ``fingerprint_fields`` as sorted JSON.
        """
        return hashlib.sha256(json.dumps(self.fingerprint_fields(), sort_keys=True).encode()).hexdigest()[:16]


def zoo_students(dataset: Dataset, names: Iterable[str]) -> tuple[str, ...]:
    """Student names as the zoo spells them (``fd`` -> ``fd-a0.5`` on MNIST)."""
    return tuple(model_name(*resolve_model(dataset, s)) for s in names)


def as_attack(value: Attack | dict) -> Attack:
    """An ``Attack``, also from its dict form (a config read back from ``config.json``)."""
    return Attack(**value) if isinstance(value, dict) else value
