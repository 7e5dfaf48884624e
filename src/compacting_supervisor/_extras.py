"""Names that need an optional extra: importable always, telling the install when used."""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["missing_extra"]


def missing_extra(name: str, extra: str, cause: ImportError) -> type:
    """A stand-in for ``name`` whose use says which extra to install.

    Args:
        name: The public name that could not be imported.
        extra: The package extra that brings what it needs.
        cause: The import error, chained to the error the stand-in raises.
    """
    message = (
        f"`{name}` needs {cause.name or 'an optional package'}, which is not installed: "
        f'pip install "compacting-supervisor[{extra}]".'
    )

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise ImportError(message) from cause

    return type(name, (), {"__init__": refuse, "__doc__": message, "__module__": __name__})
