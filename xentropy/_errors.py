r"""The errors of bad input, one class per kind of mistake, and their framework translations.

Every error the core raises for bad input is an :class:`InputError`: a ``ValueError`` (or, for
dtypes and array types, a ``TypeError``) whose class says what went wrong:

==============================  =================  ============================================
class                           ``kind``           the mistake
==============================  =================  ============================================
:class:`ClassIndexOutOfRange`   ``index``          a class index outside :math:`[0, C)`
:class:`ShapeMismatch`          ``shape``          an array of the wrong shape (never broadcast)
:class:`WrongDtype`             ``dtype``          float class indices, integer logits, ...
:class:`ValueOutOfRange`        ``value``          a probability, target or weight out of range
:class:`BadHyperparameter`      ``hyperparameter`` ``label_smoothing``, ``gamma``, ... outside
                                                   its domain
:class:`InvalidOption`          ``option``         a bad ``reduction`` or ``axis``, an option
                                                   that does not apply
:class:`MixedArrayTypes`        ``array_type``     arrays of two libraries, a Python list
==============================  =================  ============================================

Its message is a template in which each argument it names is written ``{name}`` with the core's
name (``{targets} has shape (4, 1) but ...``), and its ``fields`` hold what a framework's wording
needs (the offending value, the shapes). Rendered as it is, the message names the core's
arguments; a dialect renders it with its own names instead.

A :class:`Dialect` (one per framework dialect, defined beside its adapter's entry point) maps each
kind to a :class:`Rule`: the framework's exception class for that mistake, and the framework's own
key phrase where its tests match one. :meth:`Dialect.raising` wraps the core's checks: an
``InputError`` leaving it is raised again as an instance of a class that derives from both the
core's class and the framework's (``ClassIndexOutOfRange`` and ``IndexError`` for PyTorch), with
the dialect's argument names (``target`` for the core's ``targets``) and the key phrase appended.
Code written for the framework (``except IndexError``) and for the core (``except ValueError``,
``except ClassIndexOutOfRange``) both catch it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

_REFERENCE = re.compile(r"\{([A-Za-z_][\w\-]*)\}")

# The key a dialect's name map gives the prediction under (the argument the gradient is for)
PREDICTION = "<prediction>"


class InputError(Exception):
    """Bad input: the base of every kind below.

    Args:
        template: the message; ``{name}`` marks a reference to the argument ``name`` (the core's
            name), rendered as ``name`` itself unless a dialect renames it.
        prediction: which of the referenced names is the prediction (logits, probabilities),
            where it is not the name of the operator's own argument (``"log-probabilities"``).
        **fields: what the mistake was (``argument``, ``value``, ``shape``, ``expected`` ...),
            for dialects that word it as their framework does.
    """

    kind: ClassVar[str] = "input"
    template: str
    prediction: str | None
    fields: dict[str, Any]
    text: str

    def __init__(self, template: str, *, prediction: str | None = None, **fields: Any) -> None:
        super().__init__()
        _fill(self, template, prediction, dict(fields), _render(template, {}))

    @property
    def references(self) -> tuple[str, ...]:
        """The argument names the message refers to, in order (each once)."""
        return tuple(dict.fromkeys(_REFERENCE.findall(self.template)))

    def render(self, names: Mapping[str, str]) -> str:
        """The message with each referenced argument named as ``names`` says (else unchanged)."""
        return _render(self.template, names)

    def __str__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, ...]:
        # a translated class is made at run time: rebuilt from its parts, not found by name
        cls = type(self)
        parts = (getattr(cls, "_core_class", cls), getattr(cls, "_also", ()))
        leading = getattr(cls, "_leading", ())
        return _instance, (*parts, leading, self.template, self.prediction, self.fields, self.text)


class ClassIndexOutOfRange(InputError, ValueError):
    """A class index outside ``[0, C)`` that is not ``ignore_index``."""

    kind = "index"


class ShapeMismatch(InputError, ValueError):
    """An array whose shape does not fit (targets are never broadcast)."""

    kind = "shape"


class WrongDtype(InputError, TypeError):
    """An array of the wrong dtype: float class indices, integer predictions."""

    kind = "dtype"


class ValueOutOfRange(InputError, ValueError):
    """Entries outside their domain: probabilities, binary targets, negative weights, NaN."""

    kind = "value"


class BadHyperparameter(InputError, ValueError):
    """A hyperparameter (``label_smoothing``, ``gamma``, ``epsilon`` ...) outside its domain."""

    kind = "hyperparameter"


class InvalidOption(InputError, ValueError):
    """A bad static option (``reduction``, ``axis``) or an option that does not apply."""

    kind = "option"


class MixedArrayTypes(InputError, TypeError):
    """Arrays of different libraries together, or a Python list where an array is needed."""

    kind = "array_type"


def _render(template: str, names: Mapping[str, str]) -> str:
    return _REFERENCE.sub(lambda m: names.get(m.group(1), m.group(1)), template)


def _fill(
    error: InputError, template: str, prediction: str | None, fields: dict[str, Any], text: str
) -> None:
    error.template, error.prediction, error.fields, error.text = template, prediction, fields, text
    error.args = (text,)


def _instance(
    core: type[InputError],
    also: tuple[type[BaseException], ...],
    leading: tuple[Any, ...],
    template: str,
    prediction: str | None,
    fields: dict[str, Any],
    text: str,
) -> InputError:
    """An error of class ``core`` (and of ``also``) with the given message parts."""
    cls = _translated_class(core, also, leading) if also else core
    error = cls.__new__(cls)
    for framework_class in also:
        if framework_class.__module__ != "builtins":  # TF's OpError keeps state of its own
            framework_class.__init__(error, *leading, text)  # type: ignore[misc]
    _fill(error, template, prediction, fields, text)
    return error


def ref(name: str) -> str:
    """``name`` as a reference in a message template: ``{name}`` (a name that cannot be one, such
    as ``"input 0"``, stays plain text)."""
    reference = "{" + name + "}"
    return reference if _REFERENCE.fullmatch(reference) else name


# --- translation into a framework's classes and words ---------------------------------------


class Names:
    """A dialect's names for the arguments an error refers to.

    ``names(key)`` is the dialect's name for the core's argument ``key`` (``key`` itself where
    the dialect has none); :attr:`prediction` the dialect's name of the prediction.
    """

    def __init__(self, error: InputError, mapping: Mapping[str, str]) -> None:
        self._mapping = dict(mapping)
        prediction = mapping.get(PREDICTION)
        if error.prediction is not None and prediction is not None:
            self._mapping[error.prediction] = prediction
        self.prediction = prediction or error.prediction or "the prediction"

    def __call__(self, key: str) -> str:
        return self._mapping.get(key, key)

    def is_targets(self, key: str | None) -> bool:
        """Whether the core's argument ``key`` is the targets (the dialect's ``target``,
        ``labels``, ``y_true``), under the core's name or already under the dialect's."""
        return key is not None and self(key) == self("targets")

    def mapping(self) -> dict[str, str]:
        return self._mapping


# A framework's wording of a mistake: (error, names) -> the key phrase, or None for none
Phrase = Callable[[InputError, Names], "str | None"]


@dataclass(frozen=True)
class Rule:
    """What a framework raises for one kind of mistake.

    ``also``: the framework's exception class (or classes), which the raised error derives from
    besides the core's (none: the core's class is the framework's too). ``phrase``: the
    framework's key phrase, appended to the message (where its own tests match on one).
    ``leading_args``: the arguments a class of ``also`` that is not a built-in takes before the
    message (``tf.errors.OpError`` subclasses take ``node_def, op, message``).
    """

    also: type[BaseException] | tuple[type[BaseException], ...] = ()
    phrase: Phrase | None = None
    leading_args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.also, type):
            object.__setattr__(self, "also", (self.also,))

    def classes(self) -> tuple[type[BaseException], ...]:
        return self.also  # type: ignore[return-value]  # a tuple after __post_init__


@dataclass(frozen=True)
class Dialect:
    """A framework dialect's translation of the core's errors: one :class:`Rule` per kind."""

    framework: str
    rules: Mapping[type[InputError], Rule] = field(default_factory=dict)

    def rule(self, error: InputError) -> Rule:
        for cls in type(error).__mro__:
            if cls in self.rules:
                return self.rules[cls]
        return Rule()

    def extended(self, framework: str, rules: Mapping[type[InputError], Rule]) -> Dialect:
        """This dialect with more classes and other key phrases (Keras over its backend's
        framework): each rule's classes are added to this dialect's, its phrase replaces."""
        merged = dict(self.rules)
        for kind, rule in rules.items():
            old = merged.get(kind, Rule())
            classes = tuple(dict.fromkeys((*old.classes(), *rule.classes())))
            phrase = rule.phrase or old.phrase
            merged[kind] = Rule(classes, phrase, old.leading_args or rule.leading_args)
        return Dialect(framework, merged)

    def translate(self, error: InputError, mapping: Mapping[str, str]) -> InputError:
        """``error`` with the dialect's names and its framework's class and key phrase."""
        rule = self.rule(error)
        names = Names(error, mapping)
        text = error.render(names.mapping())
        phrase = None if rule.phrase is None else rule.phrase(error, names)
        if phrase and phrase not in text:
            text = f"{text}; {phrase}"
        core: type[InputError] = getattr(type(error), "_core_class", type(error))
        also = tuple(c for c in rule.classes() if not issubclass(core, c))
        fields = error.template, error.prediction, error.fields, text
        return _instance(core, also, rule.leading_args, *fields)

    @contextlib.contextmanager
    def raising(self, mapping: Mapping[str, str] | None) -> Iterator[None]:
        """Raise the :class:`InputError` s of the block translated (``mapping``: the dialect's
        argument names, :func:`dialect_names`; None leaves them as the core's)."""
        try:
            yield
        except InputError as error:
            if mapping is None:
                raise
            raise self.translate(error, mapping).with_traceback(error.__traceback__) from None


@functools.cache
def _translated_class(
    core: type[InputError], also: tuple[type[BaseException], ...], leading: tuple[Any, ...]
) -> type[InputError]:
    """The class deriving from ``core`` and ``also`` (``ShapeMismatch[RuntimeError]``)."""
    name = f"{core.__name__}[{', '.join(c.__name__ for c in also)}]"
    namespace = {
        "__module__": core.__module__,
        "__qualname__": name,
        "_core_class": core,
        "_also": also,
        "_leading": leading,
        # the core's rendering of the message, not the framework's (OpError.__str__)
        "__str__": InputError.__str__,
    }
    return type(name, (core, *also), namespace)  # type: ignore[return-value]


def forward_parameters(op: Any) -> tuple[str, ...]:
    """The names of the arrays ``op.forward`` takes, in order (``logits, targets, ...``)."""
    return _forward_parameters(type(op))


@functools.cache
def _forward_parameters(cls: Any) -> tuple[str, ...]:
    parameters = list(inspect.signature(cls.forward).parameters.values())[2:]  # self, xp
    return tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD)


def dialect_names(
    parameters: Sequence[str], names: Sequence[str], prediction_position: int
) -> dict[str, str]:
    """The map from the core's argument names to a dialect's, position by position, with the
    prediction under :data:`PREDICTION` as well."""
    mapping = dict(zip(parameters, names, strict=False))
    if prediction_position < len(names):
        mapping[PREDICTION] = names[prediction_position]
    return mapping


# --- arrays of the wrong library ------------------------------------------------------------

_CONVERTERS = {
    "numpy": "numpy.asarray",
    "torch": "torch.as_tensor",
    "jax": "jax.numpy.asarray",
    "jaxlib": "jax.numpy.asarray",
    "tensorflow": "tf.convert_to_tensor",
    "cupy": "cupy.asarray",
    "dask": "dask.array.asarray",
    "array_api_strict": "array_api_strict.asarray",
}


def type_name(x: Any) -> str:
    """``torch.Tensor``, ``numpy.ndarray``, ``list``: the type an array is of, as users know it."""
    cls = type(x)
    root = cls.__module__.partition(".")[0]
    if root == "builtins":
        return cls.__name__
    public = {"torch": "torch.Tensor", "numpy": "numpy.ndarray", "jaxlib": "jax.Array"}
    if root in public and (root != "numpy" or cls.__name__ == "ndarray"):
        return public[root]
    if root == "tensorflow":
        return "tf.Tensor"
    return f"{root}.{cls.__name__}"


def converter(x: Any) -> str:
    """The function that makes an array of ``x``'s library (``torch.as_tensor``)."""
    root = type(x).__module__.partition(".")[0]
    return _CONVERTERS.get(root, f"{root}.asarray")


def mixed_array_types(names: Sequence[str], arrays: Sequence[Any]) -> MixedArrayTypes:
    """The error for ``arrays`` (named ``names``) that are not all arrays of one library.

    The first array sets the library; the message names the first argument that is a Python
    sequence or an array of another library, and how to convert it.
    """
    first = next((i for i, a in enumerate(arrays) if not isinstance(a, (list, tuple))), None)
    library = None if first is None else _library(arrays[first])
    odd = next(
        i for i, a in enumerate(arrays) if isinstance(a, (list, tuple)) or _library(a) != library
    )
    name, value = names[odd], arrays[odd]
    if first is None:
        return MixedArrayTypes(
            f"{ref(name)} is a Python {type(value).__name__}; pass an array (numpy.asarray, "
            "torch.as_tensor, jax.numpy.asarray, ...)",
            argument=name,
        )
    known, like = names[first], arrays[first]
    if isinstance(value, (list, tuple)):
        return MixedArrayTypes(
            f"{ref(name)} is a Python {type(value).__name__}, not an array; pass an array like "
            f"{ref(known)} ({type_name(like)}): {converter(like)}({ref(name)})",
            argument=name,
        )
    return MixedArrayTypes(
        f"{ref(known)} is a {type_name(like)} but {ref(name)} is a {type_name(value)}; convert "
        f"{ref(name)} with {converter(like)}({ref(name)})",
        argument=name,
    )


def _library(x: Any) -> str:
    root = type(x).__module__.partition(".")[0]
    return "jax" if root == "jaxlib" else root
