"""jaxtyping aliases shared across neurodyn."""

from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

PyTreeT: TypeAlias = PyTree[Any]
Scalar: TypeAlias = Float[Array, ""]

__all__ = ["Array", "ArrayLike", "Float", "Int", "PRNGKeyArray", "PyTree", "PyTreeT", "Scalar"]
