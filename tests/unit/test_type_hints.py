"""Every public function, class and method of the package has type hints.

Public: each name in a module's `__all__` (in a module without one, each
name not starting with `_`) that the module defines, and the methods and
properties of such classes whose names do not start with `_` (plus
`__init__`). Each parameter (besides `self`, `cls`, `*args`,
`**kwargs`) and the return (besides `__init__`'s) is annotated, and the
annotations resolve (`typing.get_type_hints`), so that a typo in a string
annotation fails here and not in a user's type checker. `py.typed` ships
in the wheel (tests/integration/test_wheel.py).
"""

import importlib
import inspect
import pkgutil
import typing

import pytest

import tfp_emerging

MODULES = sorted(
  name
  for _, name, _ in pkgutil.walk_packages(
    tfp_emerging.__path__, "tfp_emerging."
  )
  if not name.endswith(".__main__")
)


def _public_callables(module):
  """`(qualified name, function)` of the public API defined in `module`."""
  names = getattr(module, "__all__", None)
  if names is None:  # No `__all__`: every name not starting with `_`.
    names = [name for name in vars(module) if not name.startswith("_")]
  for name in names:
    # Decorated functions (`tf.custom_gradient`) are checked as written.
    obj = inspect.unwrap(getattr(module, name))
    if getattr(obj, "__module__", None) != module.__name__:
      continue  # re-exported: checked where it is defined
    if inspect.isfunction(obj):
      yield name, obj
    elif inspect.isclass(obj):
      for key, value in vars(obj).items():
        if key.startswith("_") and key != "__init__":
          continue
        if isinstance(value, (classmethod, staticmethod)):
          value = value.__func__
        if isinstance(value, property):
          value = value.fget
        # tf.function-decorated methods keep the Python function.
        value = getattr(value, "python_function", value)
        if inspect.isfunction(value):
          yield f"{name}.{key}", value


def _missing_hints(qualified, function):
  signature = inspect.signature(function)
  missing = [
    p.name
    for p in signature.parameters.values()
    if p.name not in ("self", "cls")
    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    and p.annotation is p.empty
  ]
  if signature.return_annotation is signature.empty and not qualified.endswith(
    "__init__"
  ):
    missing.append("return")
  return missing


@pytest.mark.parametrize("name", MODULES)
def test_public_api_is_annotated(name):
  module = importlib.import_module(name)
  problems = []
  for qualified, function in _public_callables(module):
    missing = _missing_hints(qualified, function)
    if missing:
      problems.append(f"{qualified}: {', '.join(missing)}")
      continue
    try:
      typing.get_type_hints(function)
    except Exception as e:
      problems.append(f"{qualified}: annotations do not resolve ({e!r})")
  assert not problems, f"{name}:\n" + "\n".join(problems)


def test_the_check_can_fail():
  def unannotated(x, y: int):
    return x + y

  def annotated(x: int, y: int) -> int:
    return x + y

  assert _missing_hints("f", unannotated) == ["x", "return"]
  assert _missing_hints("f", annotated) == []
