"""xentropy: every cross-entropy variant, written once against the Python Array API standard.

Each function accepts arrays of any Array API library (NumPy, PyTorch, JAX, CuPy, Dask,
array-api-strict) and TensorFlow tensors, and returns an array of the same library. Called with
PyTorch, JAX or TensorFlow arrays, a function runs through that framework's adapter (as the
dialects ``xentropy.backends.torch``, ``.tensorflow``, ``.jax``, ``.keras`` do), which registers
the analytic gradient for the common first-order case and lets the framework's own autodiff
differentiate everything else (any order, forward mode, targets and weights); NumPy users get
:func:`value_and_grad`.
"""

from pkgutil import extend_path as _extend_path

from . import errors
from ._autograph import keep_out_of_autograph
from ._binary import binary_cross_entropy
from ._categorical import categorical_cross_entropy
from ._class_weights import class_weights
from ._divergence import kl_div_log
from ._evaluate import value_and_grad
from ._focal import sigmoid_focal_loss, softmax_focal_loss
from ._information import cross_entropy, entropy, kl_divergence
from ._linear import linear_cross_entropy
from ._namespace import register_namespace
from ._poly import poly1_cross_entropy
from ._sigmoid import sigmoid_cross_entropy
from ._softmax import softmax_cross_entropy
from ._types import KLReduction, Reduction, Scheme
from ._version import __version__ as __version__

__all__ = [
    "KLReduction",
    "Reduction",
    "Scheme",
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "class_weights",
    "cross_entropy",
    "entropy",
    "errors",
    "kl_div_log",
    "kl_divergence",
    "linear_cross_entropy",
    "poly1_cross_entropy",
    "register_namespace",
    "sigmoid_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
    "value_and_grad",
]

keep_out_of_autograph()

# A checkout run from its root (``python -m pytest``) imports this folder, which has no
# ``backends``: the strict editable install's link tree (any other ``xentropy`` folder on the
# path) supplies the remapped subpackages ``backends`` and ``conformance``.
__path__ = _extend_path(__path__, __name__)
