"""Reduce a schema to comparable plain data, from SQLModel metadata or from a live database via inspection.

Types are compared as PostgreSQL renders them ("BIGINT", "TIMESTAMP WITH TIME ZONE", "JSONB"), which is stricter
than a family and exactly what schema.sql has to say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import CheckConstraint, Engine, Table, UniqueConstraint, inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

Shape = dict[str, dict[str, Any]]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _type(type_: TypeEngine[Any]) -> str:
    return str(type_.compile(dialect=_PG))


def _ondelete(action: str | None) -> str:
    return (action or "NO ACTION").upper()


def _deferral(deferrable: bool | None, initially: str | None) -> str:
    if not deferrable:
        return "NOT DEFERRABLE"
    return f"DEFERRABLE INITIALLY {(initially or 'IMMEDIATE').upper()}"


def metadata_shape(tables: Iterable[Table]) -> Shape:
    shape: Shape = {}
    for table in tables:
        shape[table.name] = {
            "comment": table.comment,
            "columns": {
                column.name: {
                    "type": _type(column.type),
                    "nullable": bool(column.nullable),
                    "identity": column.identity is not None,
                    "server_default": column.server_default is not None and column.identity is None,
                }
                for column in table.columns
            },
            "primary_key": tuple(column.name for column in table.primary_key.columns),
            "foreign_keys": {
                fk.name: (
                    tuple(fk.column_keys),
                    fk.referred_table.name,
                    tuple(element.column.name for element in fk.elements),
                    _ondelete(fk.ondelete),
                    _deferral(fk.deferrable, fk.initially),
                )
                for fk in table.foreign_key_constraints
            },
            "unique": {
                constraint.name: tuple(column.name for column in constraint.columns)
                for constraint in table.constraints
                if isinstance(constraint, UniqueConstraint)
            },
            "indexes": {
                index.name: (tuple(column.name for column in index.columns), bool(index.unique))
                for index in table.indexes
            },
            "checks": sorted(str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)),
        }
    return shape


def database_shape(engine: Engine, *, detailed: bool = False) -> Shape:
    """`detailed` adds what only two databases can be compared on: CHECK bodies and default expressions as the
    server normalised them, and constraint names of primary keys."""
    inspector = inspect(engine)
    shape: Shape = {}
    for name in inspector.get_table_names():
        columns = {}
        for column in inspector.get_columns(name):
            entry: dict[str, Any] = {
                "type": _type(column["type"]),
                "nullable": bool(column["nullable"]),
                "identity": bool(column.get("identity")),
                "server_default": column.get("default") is not None,
            }
            if detailed:
                entry["server_default"] = column.get("default")
                entry["identity"] = column.get("identity")
            columns[column["name"]] = entry
        pk = inspector.get_pk_constraint(name)
        checks = inspector.get_check_constraints(name)
        table: dict[str, Any] = {
            "comment": inspector.get_table_comment(name)["text"],
            "columns": columns,
            "primary_key": tuple(pk["constrained_columns"]),
            "foreign_keys": {
                fk["name"]: (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    _ondelete(fk["options"].get("ondelete")),
                    _deferral(fk["options"].get("deferrable"), fk["options"].get("initially")),
                )
                for fk in inspector.get_foreign_keys(name)
            },
            "unique": {
                uc["name"]: tuple(uc["column_names"]) for uc in inspector.get_unique_constraints(name)
            },
            "indexes": {
                index["name"]: (tuple(str(c) for c in index["column_names"]), bool(index["unique"]))
                for index in inspector.get_indexes(name)
                # PostgreSQL also lists the index behind each UNIQUE constraint; those are compared as constraints.
                if not index.get("duplicates_constraint")
            },
            "checks": sorted(str(check["name"]) for check in checks),
        }
        if detailed:
            table["primary_key_name"] = pk["name"]
            table["check_bodies"] = {check["name"]: check["sqltext"] for check in checks}
        shape[name] = table
    return shape


def differences(
    left: Mapping[str, Any],
    right: Mapping[str, Any],
    names: tuple[str, str] = ("models", "schema.sql"),
    path: str = "",
) -> list[str]:
    """Every place where two shapes disagree, as readable lines ("posts.columns.extra: only in schema.sql ...")."""
    found: list[str] = []
    for key in sorted(set(left) | set(right), key=str):
        where = f"{path}.{key}" if path else str(key)
        if key not in right:
            found.append(f"{where}: only in {names[0]} ({left[key]!r})")
        elif key not in left:
            found.append(f"{where}: only in {names[1]} ({right[key]!r})")
        elif isinstance(left[key], Mapping) and isinstance(right[key], Mapping):
            found.extend(differences(left[key], right[key], names, where))
        elif left[key] != right[key]:
            found.append(f"{where}: {names[0]} has {left[key]!r}, {names[1]} has {right[key]!r}")
    return found
