"""Finding the app a runner serves: ``module:name``, ``module:factory()`` or
``module:factory(literal, ...)``, as gunicorn takes them."""

from __future__ import annotations

import ast
import importlib
from typing import Any


class AppNotFound(Exception):
    """The spec names no app: a bad spec, a module that does not import, a missing name."""


def load(spec: str) -> Any:
    """The object ``spec`` names. A call is made with its literal arguments (strings,
    numbers, ...); the module's import errors propagate as themselves, so their traceback
    shows."""
    module_name, sep, expression = spec.partition(":")
    if not sep:
        expression = "app"
    if not module_name:
        raise AppNotFound(f"{spec!r}: expected MODULE:APP")
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError as error:
        raise AppNotFound(f"{spec!r}: {expression!r} is not a name or a call") from error
    call = None
    if isinstance(tree, ast.Call):
        call, tree = tree, tree.func
    if not isinstance(tree, ast.Name):
        raise AppNotFound(f"{spec!r}: {expression!r} is not a name or a call")
    module = importlib.import_module(module_name)
    try:
        target = getattr(module, tree.id)
    except AttributeError:
        raise AppNotFound(f"{spec!r}: module {module_name!r} has no {tree.id!r}") from None
    if call is None:
        return target
    try:
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except ValueError as error:
        raise AppNotFound(f"{spec!r}: a factory's arguments must be literals") from error
    return target(*args, **kwargs)
