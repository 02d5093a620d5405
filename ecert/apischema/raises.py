"""Which problem codes a route handler can raise: read from the code, not written by hand.

From the handler (and its guards) the walk follows every ecert function the source names, and
collects the :class:`~ecert.errors.EcertError` classes named in ``raise`` statements. A call
through an object is followed when the object's class is known from an annotation or from the
call that made it (``ctx = await pricing_context(...)``; ``ctx.allow(...)``), not otherwise
(``runtime.trust.verify(...)``): the few routes where that hides a refusal add their codes in
:data:`ecert.apischema.document.EXTRA_CODES`.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

from ecert.errors import EcertError


def codes_raised(fn: Callable[..., Any]) -> frozenset[str]:
    """The codes of every ecert error reachable from ``fn``."""
    codes: set[str] = set()
    _walk(fn, codes, set())
    return frozenset(codes)


def _walk(fn: Any, codes: set[str], seen: set[Any]) -> None:
    fn = inspect.unwrap(getattr(fn, "__func__", fn))  # a controller's handler is bound
    if fn in seen or not _ours(fn):
        return
    seen.add(fn)
    tree = _tree(fn)
    if tree is None:
        return
    names = fn.__globals__
    owner = names.get(fn.__qualname__.split(".")[0])
    if isinstance(owner, type) and "." in fn.__qualname__:
        names = {**names, "self": owner, "cls": owner}  # self._helper(...) is followed too
    names = {**names, **_local_classes(fn, tree, names)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            raised = _resolve(target, names)
            if isinstance(raised, type) and issubclass(raised, EcertError):
                codes.add(raised.code)
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            found = _resolve(node, names)
            if inspect.isfunction(found) or inspect.ismethod(found):
                _walk(found, codes, seen)


def _local_classes(fn: Any, tree: ast.AST, names: dict[str, Any]) -> dict[str, type]:
    """Parameters and local names whose ecert class is known: annotated, or made by a call to
    a class or to a function with an annotated return."""
    found = {name: cls for name, hint in _hints(fn).items() if (cls := _our_class(hint))}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        value = value.value if isinstance(value, ast.Await) else value
        if isinstance(target, ast.Name) and isinstance(value, ast.Call):
            callee = _resolve(value.func, names)
            made = callee if isinstance(callee, type) else _hints(callee).get("return")
            if (cls := _our_class(made)) is not None:
                found[target.id] = cls
    return found


def _hints(fn: Any) -> dict[str, Any]:
    if not _ours(fn):
        return {}
    try:
        return typing.get_type_hints(fn)
    except Exception:  # names only imported for type checking: nothing known
        return {}


def _our_class(hint: Any) -> type | None:
    """The ecert class of an annotation (``X`` or ``X | None``)."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(options) == 1 and isinstance(options[0], type):
        return options[0] if options[0].__module__.startswith("ecert.") else None
    return None


def _ours(fn: Any) -> bool:
    return inspect.isfunction(fn) and (fn.__module__ or "").startswith("ecert.")


@functools.cache
def _tree(fn: Any) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None


def _resolve(node: ast.expr, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return names.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, names)
        if owner is None or not (inspect.ismodule(owner) or isinstance(owner, type)):
            return None
        if inspect.ismodule(owner):
            return getattr(owner, node.attr, None)
        found = inspect.getattr_static(owner, node.attr, None)
        return found.__func__ if isinstance(found, classmethod | staticmethod) else found
    return None
