"""Declared options: what a config key may hold, what it means, and where its default comes from.

A method declares its options in Python, on its class (``options = {...}``, merged with those
of the classes it derives from, so every method has ``Method``'s common options); a dataset
builder may declare its own (``declare_options``). Each ``Option`` names its type, range or
choices, a one-line help and, when it has one, a default with its source tag ([paper], [code],
[ours]). The YAML files hold the recipes: values for declared options, each with its tag.
The resolver checks every key and value against the declaration, once, before any work.
"""
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from ltbench.core.errors import UserError, close_matches_hint

SOURCES = ("paper", "code", "ours")


class _Missing:
    def __repr__(self):
        return "MISSING"


MISSING = _Missing()  # an option without a default: the YAML must give its value


@dataclass(frozen=True)
class Spec:
    """The type of an option that names a registered part: ``name`` or ``{type: name, **options}``
    (a loss, a sampler). ``check(value)`` raises a UserError for an unknown name or option.
    A new value with a ``type`` replaces the old one whole; one without (``loss.tau=2``) sets
    that option of the current one."""

    what: str
    check: Callable[[object], None]


Type = Union[type, Spec]


def _number_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Option:
    """One config key. type: bool, int (a whole number), float (a finite number; whole numbers
    pass), str, list (of `items`), dict (a free mapping) or a Spec. Bounds ge / gt / le / lt
    and choices apply to the value (to each item of a list); `also` lists values accepted besides
    the type ('auto', 'clip'); nullable accepts null. check(value) returns what is expected when
    a value that passed the rest is still wrong (None when it is right)."""

    type: Type
    default: object = MISSING
    help: str = ""
    source: Tuple[str, ...] = ()
    choices: Optional[Tuple] = None
    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    nullable: bool = False
    also: Tuple = ()
    items: Optional[type] = None
    length: Optional[int] = None
    min_length: Optional[int] = None
    check: Optional[Callable[[object], Optional[str]]] = None
    allowed_text: Optional[str] = None  # what it takes, in words, where the type does not say it

    def __post_init__(self):
        source = (self.source,) if isinstance(self.source, str) else tuple(self.source)
        unknown = [tag for tag in source if tag not in SOURCES]
        if unknown:
            raise ValueError(f"Option source {unknown}: tags are {', '.join(SOURCES)}")
        object.__setattr__(self, "source", source)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "also", tuple(self.also))
        if self.default is not MISSING and self.default is not None and not source:
            raise ValueError("an Option with a default names its source: source='paper', 'code' or 'ours'")

    @property
    def is_spec(self) -> bool:
        return isinstance(self.type, Spec)

    def with_default(self, default, source) -> "Option":
        return replace(self, default=default, source=source)

    # -- checking ----------------------------------------------------------------------------
    def _bounds_text(self) -> str:
        low = (">=", self.ge) if self.ge is not None else (">", self.gt) if self.gt is not None else None
        high = ("<=", self.le) if self.le is not None else ("<", self.lt) if self.lt is not None else None
        if low and high and low[0] == ">=" and high[0] == "<=":
            return f" from {_number_text(low[1])} to {_number_text(high[1])}"
        return " and".join(f" {bound[0]} {_number_text(bound[1])}" for bound in (low, high) if bound)

    def _scalar_text(self, kind, plural: bool = False) -> str:
        if self.choices is not None:
            return ("each one of " if plural else "one of ") + ", ".join(map(str, self.choices))
        names = {bool: ("true or false", "true or false"), int: ("a whole number", "whole numbers"),
                 float: ("a finite number", "finite numbers"), str: ("a text", "texts"), dict: ("a mapping", "mappings")}
        text = names.get(kind, (getattr(kind, "__name__", str(kind)),) * 2)[1 if plural else 0]
        return text + (self._bounds_text() if kind in (int, float) else "")

    def allowed(self) -> str:
        """What the option takes, in words: 'a whole number >= 1', 'one of sgd, adamw', ..."""
        if self.allowed_text:
            return self.allowed_text
        if self.is_spec:
            text = f"a {self.type.what} name or {{type: NAME, ...options}}"
        elif self.type is list:
            count = f"{self.length} " if self.length is not None else ""
            least = f" (at least {self.min_length})" if self.min_length else ""
            text = f"a list of {count}{self._scalar_text(self.items, plural=True)}{least}" if self.items \
                else f"a list{least}"
        else:
            text = self._scalar_text(self.type)
        extra = [repr(value) for value in self.also] + (["null"] if self.nullable else [])
        return text + "".join(f" or {value}" for value in extra)

    def _scalar_ok(self, value, kind) -> bool:
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif kind is None or kind is object:
            ok = True
        else:
            ok = isinstance(value, kind)
        if not ok:
            return False
        if self.choices is not None and value not in self.choices:
            return False
        if kind in (int, float):
            if self.ge is not None and value < self.ge or self.gt is not None and value <= self.gt:
                return False
            if self.le is not None and value > self.le or self.lt is not None and value >= self.lt:
                return False
        return True

    def problem(self, value) -> Optional[str]:
        """None when `value` is allowed, else what is expected (a UserError of a Spec's own check
        propagates as it is)."""
        if value is None and self.nullable or (value in self.also and not isinstance(value, bool)):
            return None
        if self.is_spec:
            if not (isinstance(value, str) or (isinstance(value, dict) and isinstance(value.get("type"), str))):
                return self.allowed()
            self.type.check(value)
        elif self.type is list:
            if not isinstance(value, list) or (self.length is not None and len(value) != self.length) \
                    or (self.min_length is not None and len(value) < self.min_length) \
                    or (self.items is not None and not all(self._scalar_ok(item, self.items) for item in value)):
                return self.allowed()
        elif not self._scalar_ok(value, self.type):
            return self.allowed()
        return self.check(value) if self.check else None


Entry = Union[Option, "Section"]


@dataclass(frozen=True)
class Section:
    """A mapping of options (a config section, or a whole config). checks: functions
    ``check(values, path)`` of the section's finished values (path: its dotted key, '' at the
    top), for rules between its options; each raises a UserError. open: keys that are not
    declared are taken as they are (a plug-in dataset's options it does not declare).
    off_when: (option, value) that switches the whole section off (a second stage of type
    none): its other options are then not used."""

    options: Mapping[str, Entry]
    help: str = ""
    checks: Tuple[Callable[[dict, str], None], ...] = ()
    open: bool = False
    off_when: Optional[Tuple[str, object]] = None

    def __post_init__(self):
        options = {key: as_entry(value) for key, value in dict(self.options).items()}
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "checks", tuple(self.checks))

    def extend(self, options: Mapping[str, Entry] = None, checks: Iterable = (), help: str = None,
               off_when: Optional[Tuple[str, object]] = None) -> "Section":
        """This section with `options` added or replaced (a Section merges into a Section), more
        checks, and a new help or off_when where given."""
        merged = dict(self.options)
        for key, entry in dict(options or {}).items():
            entry = as_entry(entry)
            if isinstance(entry, Section) and isinstance(merged.get(key), Section):
                entry = replace(merged[key].extend(entry.options, entry.checks, entry.help or None),
                                off_when=entry.off_when or merged[key].off_when, open=entry.open or merged[key].open)
            merged[key] = entry
        return replace(self, options=merged, help=self.help if help is None else help,
                       checks=self.checks + tuple(checks), off_when=off_when or self.off_when)

    def without(self, *keys: str) -> "Section":
        return replace(self, options={k: v for k, v in self.options.items() if k not in keys})

    def is_off(self, values) -> bool:
        return self.off_when is not None and isinstance(values, dict) \
            and values.get(self.off_when[0]) == self.off_when[1]

    def with_defaults(self, source, **defaults) -> "Section":
        """This section with new defaults for some of its options, all from `source`."""
        missing = [key for key in defaults if key not in self.options]
        if missing:
            raise KeyError(f"no options {missing} in this section")
        return self.extend({key: self.options[key].with_default(value, source) for key, value in defaults.items()})

    def entry(self, keys: Sequence[str]) -> Optional[Entry]:
        """The Option or Section at a key path, or None when it is not declared."""
        node = self
        for key in keys:
            if not isinstance(node, Section) or key not in node.options:
                return None
            node = node.options[key]
        return node

    def defaults(self) -> dict:
        """The declared defaults, as a nested mapping (options without one are left out)."""
        values = {}
        for key, entry in self.options.items():
            if isinstance(entry, Section):
                values[key] = entry.defaults()
            elif entry.default is not MISSING:
                values[key] = entry.default
        return values

    def walk(self, prefix: str = ""):
        """(dotted key, Option) of every option, in declaration order."""
        for key, entry in self.options.items():
            dotted = f"{prefix}{key}"
            if isinstance(entry, Section):
                yield from entry.walk(dotted + ".")
            else:
                yield dotted, entry

    def sections(self, prefix: str = ""):
        """(dotted key, Section) of this section ('' for it) and every section in it."""
        yield prefix.rstrip("."), self
        for key, entry in self.options.items():
            if isinstance(entry, Section):
                yield from entry.sections(f"{prefix}{key}.")


def as_entry(value) -> Entry:
    if isinstance(value, (Option, Section)):
        return value
    if isinstance(value, Mapping):
        return Section(value)
    raise TypeError(f"an option is declared with Option(...) or a mapping of them, got {value!r}")


def as_section(options) -> Section:
    return options if isinstance(options, Section) else Section(options or {})


def merged_options(classes: Iterable[type], attribute: str = "options") -> Section:
    """The options of a class hierarchy: each class's own ``options`` over its bases', as a
    dataclass's fields add up (`classes` from the base to the class itself)."""
    merged = Section({})
    for cls in classes:
        own = cls.__dict__.get(attribute)
        if own is not None:
            merged = merged.extend(as_section(own).options, as_section(own).checks)
    return merged


def declare_options(options) -> Callable:
    """Decorator that declares a function's options (a dataset builder's ``dataset`` section)."""
    section = as_section(options)

    def mark(function):
        function.options = section
        return function

    return mark


# -- what a bad key or value says -------------------------------------------------------------
def shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def value_error(dotted: str, value, option: Option, expected: str, where: str) -> UserError:
    meaning = f" ({option.help})" if option.help else ""
    hint = ""
    if option.choices is not None and isinstance(value, str):
        hint = close_matches_hint(value, map(str, option.choices)).replace(" (choose from", " (one of")
        hint = hint if "did you mean" in hint else ""
    return UserError(f"{dotted}={shown(value)}: expected {expected}{meaning}{hint}; {where}")


@dataclass(frozen=True)
class Origin:
    """Where a value of a resolved config was set: 'set in FILE:LINE', 'set by --cfg-options',
    'the declared default'; its source tags, and the comment that says why (a YAML value's)."""

    where: str
    tags: Tuple[str, ...] = ()
    comment: str = ""


@dataclass
class Origins:
    """Origin of every value of a config, by dotted key; a key not set itself has its section's."""

    by_key: Dict[str, Origin] = field(default_factory=dict)

    def set(self, dotted: str, origin: Origin, replaced_mapping: bool = False):
        """`dotted` set at `origin`; replaced_mapping: its old value was a mapping, whose keys'
        origins go with it."""
        if replaced_mapping:
            for key in [key for key in self.by_key if key.startswith(dotted + ".")]:
                del self.by_key[key]
        self.by_key[dotted] = origin

    def of(self, dotted: str) -> Optional[Origin]:
        keys = dotted.split(".")
        while keys:
            origin = self.by_key.get(".".join(keys))
            if origin is not None:
                return origin
            keys.pop()
        return None
