"""`ltbench cache ls | rm | verify`: what the feature cache holds, removing entries from it, and
checking every entry against its checksum.

An entry is ``arrays/<k2>/<key>.npy`` with its description ``<key>.json`` and its verified
stamp ``<key>.verified`` (see engine/cache.py); the three go together.
Listing reads only the .npy header and the description, never an array. A dot-named file in an
entry folder is the temp file of a writer (``ArrayCache._temp_path``): a finished writer renames
it into place, a killed one leaves it behind. A temp file written to in the last few minutes may
belong to a writer that is still running, so it is listed but never removed.
"""
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from tabulate import tabulate

from ltbench.core.errors import UserError, close_matches_hint
from ltbench.engine.cache import ENTRIES_FOLDER, INTEGRITY_KEY, STAMP_SUFFIX, check_entry, format_bytes, stamp_path

KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
KEY_PREFIX_PATTERN = re.compile(r"^[0-9a-f]+$")
SHOWN_KEY_CHARACTERS = 12
TEMP_KIND = "temp"
# What ltbench.engine.features stores; --kind also accepts any kind found in the cache.
STANDARD_KINDS = ("image_features", "image_tokens", "text_classifier", TEMP_KIND)
# A writer streams into its temp file until it renames it: a file this fresh may still be written.
ACTIVE_WRITE_SECONDS = 600
SECONDS_PER_DAY = 86400.0


@dataclass
class CacheFile:
    """A cache entry (``key`` set; its .npy and / or .json present) or a temp file (``key`` None)."""

    paths: List[Path]
    kind: str
    size: int
    modified: float
    key: Optional[str] = None
    shape: Optional[Tuple[int, ...]] = None
    dtype: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        return self.key[:SHOWN_KEY_CHARACTERS] if self.key else self.paths[0].name

    @property
    def shape_text(self) -> str:
        return "x".join(str(n) for n in self.shape) if self.shape is not None else "-"

    def is_active_temp(self, now: float) -> bool:
        return self.kind == TEMP_KIND and now - self.modified < ACTIVE_WRITE_SECONDS


def _npy_header(path: Path):
    """(shape, dtype name) from a .npy header, or None if the file is not a readable .npy."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(handle)
        return tuple(int(n) for n in shape), dtype.name
    except (OSError, ValueError):
        return None


def _read_description(path: Path) -> Optional[dict]:
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return description if isinstance(description, dict) else None


def _short_hash(value) -> str:
    """'file:3f2a...' -> 'file:3f2a9c1b'; a bare hex digest -> its first 8 characters."""
    text = str(value)
    scheme, colon, digest = text.rpartition(":")
    return f"{scheme}{colon}{digest[:8]}"


def _transform_text(transform) -> str:
    if not isinstance(transform, dict):
        return str(transform)
    return f"{transform.get('kind', '?')} {transform.get('size', '?')}px {transform.get('interpolation', '')}".strip()


# Description keys in the order a reader wants them: what was encoded, by what, how.
SUMMARY_ORDER = ("weights", "split", "class_names_sha256", "transform", "templates", "precision")
# Shown in columns of their own.
NOT_SUMMARIZED = ("kind", "dtype", INTEGRITY_KEY)


def _summary_part(key: str, value) -> str:
    if key == "transform":
        return _transform_text(value)
    if key == "templates" and isinstance(value, list):
        return f"{len(value)} templates"
    if key == "class_names_sha256":
        return f"classes {_short_hash(value)}"
    if key in ("weights", "split"):
        return f"{key} {_short_hash(value)}"
    return f"{key} {value}" if not isinstance(value, (dict, list)) else f"{key} ..."


def summarize(description: dict) -> str:
    """One short line of what an entry was computed from: weights, split / class names, transform."""
    keys = sorted((key for key in description if key not in NOT_SUMMARIZED),
                  key=lambda key: (SUMMARY_ORDER.index(key) if key in SUMMARY_ORDER else len(SUMMARY_ORDER), key))
    return "  ".join(_summary_part(key, description[key]) for key in keys)


def _stat(path: Path):
    """os.stat_result, or None for a file gone meanwhile (renamed by its writer, removed by an rm)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _entry(key: str, npy: Path, description_path: Path) -> Optional[CacheFile]:
    stats = {path: _stat(path) for path in (npy, description_path)}
    paths = [path for path, stat in stats.items() if stat is not None]
    stamp = stamp_path(npy)
    if not paths:
        return None if _stat(stamp) is None else CacheFile(paths=[stamp], key=key, kind="unknown", size=0,
                                                            modified=_stat(stamp).st_mtime, note="a stamp alone")
    description = _read_description(description_path) if stats[description_path] else None
    # The stamp (a few bytes, rewritten when a reader verifies) goes with the entry but counts
    # in neither its size nor its age.
    entry = CacheFile(paths=paths + ([stamp] if _stat(stamp) is not None else []), key=key,
                      kind=(description or {}).get("kind", "unknown"),
                      size=sum(stats[path].st_size for path in paths),
                      modified=max(stats[path].st_mtime for path in paths))
    header = _npy_header(npy) if stats[npy] else None
    if header is not None:
        entry.shape, entry.dtype = header
    if not stats[npy]:
        entry.note = "no array (description only)"
    elif header is None:
        entry.note = "unreadable array (recomputed on next use)"
    elif description is None:
        entry.note = "no description (writer killed before writing it?)"
    elif not isinstance(description.get(INTEGRITY_KEY), dict):
        entry.note = "no checksum (recomputed on next use); " + summarize(description)
    elif list(entry.shape) != list(description[INTEGRITY_KEY].get("shape", [])):
        entry.note = "shape differs from its checksum record (recomputed on next use)"
    else:
        entry.note = summarize(description)
    return entry


def scan(root: Path) -> Tuple[List[CacheFile], List[CacheFile]]:
    """(entries sorted by kind then date, temp files sorted by date) under cache root ``root``."""
    entries, temps = [], []
    for folder in sorted((Path(root) / ENTRIES_FOLDER).glob("*")):
        if not folder.is_dir():
            continue
        keys = set()
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                stat = _stat(path)
                if stat is not None:
                    temps.append(CacheFile(paths=[path], kind=TEMP_KIND, size=stat.st_size,
                                           modified=stat.st_mtime, note="left by a killed writer"))
            elif path.suffix in (".npy", ".json", STAMP_SUFFIX) and KEY_PATTERN.match(path.stem):
                keys.add(path.stem)
        found = (_entry(key, folder / f"{key}.npy", folder / f"{key}.json") for key in sorted(keys))
        entries += [entry for entry in found if entry is not None]
    entries.sort(key=lambda entry: (entry.kind, entry.modified))
    temps.sort(key=lambda temp: temp.modified)
    return entries, temps


def _row(item: CacheFile, now: float):
    note = item.note
    if item.is_active_temp(now):
        note = f"written in the last {ACTIVE_WRITE_SECONDS // 60} minutes: a writer may still be running"
    when = datetime.fromtimestamp(item.modified).strftime("%Y-%m-%d %H:%M")
    return [item.label, item.kind, item.shape_text, item.dtype or "-", format_bytes(item.size), when, note]


def list_report(root: Path) -> str:
    """The `ltbench cache ls` text: one line per entry and temp file, then a total line."""
    entries, temps = scan(root)
    if not entries and not temps:
        return f"cache {root}: empty"
    now = time.time()
    rows = [_row(item, now) for item in entries + temps]
    table = tabulate(rows, headers=["key", "kind", "shape", "dtype", "size", "modified", "description"],
                     tablefmt="simple", disable_numparse=True)
    total = sum(item.size for item in entries + temps)
    return f"cache {root}\n{table}\n{_count_text(entries + temps)}, {format_bytes(total)} in all"


def _match_prefixes(entries: List[CacheFile], prefixes: Sequence[str], root: Path) -> List[CacheFile]:
    """The entry each key prefix names; an unknown or ambiguous prefix is a UserError."""
    chosen = []
    for prefix in prefixes:
        prefix = prefix.lower()
        if not KEY_PREFIX_PATTERN.match(prefix):
            raise UserError(f"'{prefix}' is not a cache key prefix (hex digits, as `ltbench cache ls` shows)")
        matches = [entry for entry in entries if entry.key.startswith(prefix)]
        if not matches:
            raise UserError(f"no cache entry with key prefix '{prefix}' under {root}; see `ltbench cache ls`")
        if len(matches) > 1:
            shown = ", ".join(entry.label for entry in matches[:4]) + (", ..." if len(matches) > 4 else "")
            raise UserError(f"key prefix '{prefix}' matches {len(matches)} cache entries ({shown}); "
                            "give more characters")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def select(root: Path, prefixes: Sequence[str] = (), kind: Optional[str] = None,
           older_than_days: Optional[float] = None, everything: bool = False, now: Optional[float] = None):
    """(entries and temp files to remove, temp files kept because a writer may still be running).

    Key prefixes pick entries (temp files have no key); --kind and --older-than narrow the choice,
    or make it without prefixes. Choosing the whole cache takes --all: without prefixes, a filter
    or --all, nothing is removed and the user is told why.
    """
    if not (prefixes or kind is not None or older_than_days is not None or everything):
        raise UserError("refusing to empty the whole cache: give key prefixes, --kind, --older-than, "
                        "or --all")
    if older_than_days is not None and not older_than_days >= 0:  # NaN too
        raise UserError(f"--older-than must be a number of days >= 0, got {older_than_days}")
    now = time.time() if now is None else now
    entries, temps = scan(root)
    if kind is not None:
        kinds = {entry.kind for entry in entries} | set(STANDARD_KINDS)
        if kind not in kinds:
            raise UserError(f"unknown cache entry kind '{kind}'{close_matches_hint(kind, kinds)}")
    chosen = _match_prefixes(entries, prefixes, root) if prefixes else entries + temps
    if kind is not None:
        chosen = [item for item in chosen if item.kind == kind]
    if older_than_days is not None:
        chosen = [item for item in chosen if now - item.modified > older_than_days * SECONDS_PER_DAY]
    kept = [item for item in chosen if item.is_active_temp(now)]
    return [item for item in chosen if item not in kept], kept


def remove(items: List[CacheFile], root: Optional[Path] = None) -> int:
    """Delete the files of ``items`` (an entry's .npy, .json and stamp together); the bytes freed.

    A file the file system refuses to delete (a read-only or someone else's cache folder) is a
    one-line UserError naming the cache folder (``root``) and what was removed before it."""
    freed, removed = 0, 0
    for item in items:
        for path in item.paths:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:  # removed meanwhile (a concurrent rm, or a writer's rename)
                continue
            except OSError as error:
                folder = root if root is not None else path.parent
                done = f"; removed {_count_text(items[:removed])} before it" if removed else ""
                raise UserError(f"cannot remove {path.name} from the cache folder {folder}: "
                                f"{error.strerror or error}{done}; ask its owner, or pass --cache-dir DIR "
                                "(or set LTBENCH_CACHE) to a cache you can write") from None
            freed += size if path.suffix != STAMP_SUFFIX else 0  # as the entry's size counts it
        removed += 1
    return freed


def _count_text(items: List[CacheFile]) -> str:
    """'3 entries and 1 temp file'."""
    temps = sum(item.kind == TEMP_KIND for item in items)
    entries = len(items) - temps
    parts = [f"{entries} entr{'ies' if entries != 1 else 'y'}"] if entries or not temps else []
    if temps:
        parts.append(f"{temps} temp file{'s' if temps != 1 else ''}")
    return " and ".join(parts)


def remove_report(root: Path, prefixes: Sequence[str] = (), kind: Optional[str] = None,
                  older_than_days: Optional[float] = None, everything: bool = False,
                  dry_run: bool = False) -> str:
    """The `ltbench cache rm` text; removes what it lists unless ``dry_run``."""
    chosen, kept = select(root, prefixes, kind, older_than_days, everything)
    now = time.time()
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {'  '.join(_row(item, now)[:5])}" for item in chosen]
    if chosen:
        freed = sum(item.size for item in chosen) if dry_run else remove(chosen, root)
        lines.append(f"{verb} {_count_text(chosen)} from {root}, "
                     f"{'would free' if dry_run else 'freed'} {format_bytes(freed)}")
    else:
        lines.append(f"nothing to remove under {root}")
    if kept:
        lines.append(f"kept {_count_text(kept)} written in the last {ACTIVE_WRITE_SECONDS // 60} minutes: "
                     "a writer may still be running")
    return "\n".join(lines)


def verify_report(root: Path) -> Tuple[str, int]:
    """The `ltbench cache verify` text and the number of bad entries: every entry's array is read
    once and checked against its checksum (shape, dtype, content, finite values)."""
    entries, temps = scan(root)
    if not entries:
        return f"cache {root}: no entries to verify", 0
    lines, bad = [], 0
    for entry in entries:
        npy = next((path for path in entry.paths if path.suffix == ".npy"), None)
        if npy is None:
            problem = "no array (description only)"
        else:
            _, problem = check_entry(npy, rehash=True)  # whatever its stamp says
        if problem is not None:
            bad += 1
            lines.append(f"bad {entry.label}  {entry.kind}  {problem}")
    verdict = (f"{bad} of {_count_text(entries)} bad: each is recomputed on its next use, or remove them with "
               f"`ltbench cache rm KEY_PREFIX`" if bad else f"all {_count_text(entries)} verified")
    return "\n".join([f"cache {root}", *lines, verdict]), bad
