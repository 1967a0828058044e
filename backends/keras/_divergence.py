r"""``keras.losses.kl_divergence`` and ``keras.losses.KLDivergence``, computed by the core.

Per example, along the last axis,

.. math::

    \ell = \sum_c \hat y_c \log \frac{\hat y_c}{\hat q_c}, \qquad
    \hat y = \operatorname{clip}(y_{\text{true}}, \epsilon, 1),\;
    \hat q = \operatorname{clip}(y_{\text{pred}}, \epsilon, 1)

with :math:`\epsilon` = ``keras.config.epsilon()``, as Keras 3.15 computes it (``y_true`` cast
to ``y_pred``'s dtype first). Core operator: ``PointwiseKLDivergence(axis=-1,
probability_clip=epsilon)``; the derivative by either side is 0 where its clip is active and
passes on the closed interval :math:`[\epsilon, 1]` (as on Keras's TensorFlow and PyTorch
backends; Keras's JAX backend gives 0 at exactly :math:`\epsilon` or 1, e.g. at a one-hot 1 of
``y_true``).

``KLDivergence`` is a ``keras.losses.Loss`` with Keras's constructor (``reduction``, ``name``,
``dtype``), registered with ``keras.saving.register_keras_serializable(package="xentropy")``;
``sample_weight``, masks and the reduction are Keras's, computed by the core
(:mod:`xentropy.backends.keras._reduction`). Both take the
keyword-only ``validate=True`` of this dialect, which ``get_config`` keeps (with ``dtype`` when
one was given, which Keras's ``get_config`` drops).

Where the results differ from Keras (the other differences of :mod:`xentropy.backends.keras`
apply too):

* **Values outside** ``[0, 1]``: on eager inputs a ``y_true`` or ``y_pred`` outside ``[0, 1]``
  or NaN raises ValueError naming it (Keras clips it silently, so ``y_true = 2`` counts as 1);
  under tracing the affected losses and gradients are NaN.
* **Shapes**: as in Keras, a trailing dimension of 1 on one side only is squeezed (the class's
  call); otherwise the shapes must match exactly (ValueError; Keras broadcasts).
* **Dtypes**: 16-bit inputs are computed in float32 and rounded once (Keras computes in the
  16-bit dtype).
"""

from __future__ import annotations

from typing import Any

import keras

from xentropy import ops

from ._dispatch import apply, same_rank
from ._reduction import CoreWeighting

__all__ = ["KLDivergence", "kl_divergence"]


def kl_divergence(y_true: Any, y_pred: Any, *, validate: bool = True) -> Any:
    r"""``keras.losses.kl_divergence``: :math:`\sum \hat y \log(\hat y / \hat q)` over the last
    axis, both sides clipped into ``[keras.config.epsilon(), 1]``.

    Args:
        y_true: target probabilities in ``[0, 1]`` (cast to ``y_pred``'s dtype, as in Keras).
        y_pred: predicted probabilities in ``[0, 1]``, the shape of ``y_true``.
        validate: check on eager inputs that both lie in ``[0, 1]``, which reads them back (a
            device sync on GPU); False skips it, and invalid values then give NaN.

    Returns:
        One divergence per example: the shape of ``y_pred`` without its last axis.

    >>> import numpy as np
    >>> from xentropy.backends.keras import _divergence as D
    >>> loss = D.kl_divergence(np.array([[0.2, 0.8]]), np.array([[0.5, 0.5]]))
    >>> [round(float(v), 4) for v in loss]
    [0.1927]
    """
    y_pred = keras.ops.convert_to_tensor(y_pred)
    y_true = keras.ops.convert_to_tensor(y_true, dtype=y_pred.dtype)
    op = ops.PointwiseKLDivergence(
        axis=-1,
        probability_clip=keras.config.epsilon(),
        reduction="none",
        prediction_name="y_pred",
        target_name="y_true",
    )
    return apply(op, ("y_pred", "y_true", "where"), y_pred, y_true, None, validate=validate)


@keras.saving.register_keras_serializable(package="xentropy")
class KLDivergence(CoreWeighting):
    """``keras.losses.KLDivergence``: :func:`kl_divergence` of ``(y_true, y_pred)``, reduced as
    Keras reduces (default ``"sum_over_batch_size"``).

    ``validate`` is a plain attribute read at each call (see the module docstring).
    """

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "kl_divergence",
        dtype: Any = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.validate = validate
        self._given_dtype = dtype

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = same_rank(y_true, y_pred)
        return kl_divergence(y_true, y_pred, validate=self.validate)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "validate": self.validate}
        if self._given_dtype is not None:
            config["dtype"] = self._dtype_policy.name
        return config

    def __repr__(self) -> str:
        return (
            f"KLDivergence(validate={self.validate!r}, reduction={self.reduction!r}, "
            f"name={self.name!r})"
        )
