"""JSON typed or sent by people, read with limits (pure): one ValueError with a sentence.

`loads` refuses what Kiln could not process or store, where json.loads would return it or
fail with something other than a ValueError:

    >>> loads("[" * 5000 + "]" * 5000)   # RecursionError in json, or deep recursion later
    JSONRefused: The JSON is nested more than 64 levels deep.
    >>> loads('{"n": NaN}'), loads("1e400"), loads("9" * 5000), loads('"\\u0000"')
    JSONRefused ... (NaN/Infinity, a float over 1.8e308, 4,300+ digits, NUL, lone surrogates)

JSONRefused and json.JSONDecodeError are both ValueErrors, so `except ValueError` catches
every refusal; the inbound endpoint tells them apart to word its 400.
"""

import json
import math
import sys

# Deeper than any Clay row, Flow trigger, filter or template; shallow enough for every later
# recursion (canonical JSON, rendering, PostgreSQL's jsonb) to stay far from its limit.
MAX_DEPTH = 64


class JSONRefused(ValueError):
    """Valid JSON Kiln does not take; the message says what and why."""


def _refuse_constant(name):
    raise JSONRefused(f"The JSON holds {name}, which is not a number: send a number or null.")


def _finite_float(literal):
    number = float(literal)
    if not math.isfinite(number):
        raise JSONRefused(
            f"The number {literal[:40]} is too large (over about 1.8e308): send it as a string."
        )
    return number


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(text: str):
    """json.loads with Kiln's limits; raises json.JSONDecodeError or JSONRefused."""
    try:
        value = _DECODER.decode(text)
    except (JSONRefused, json.JSONDecodeError):
        raise
    except RecursionError:
        raise JSONRefused(too_deep()) from None
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise JSONRefused(
            f"A number has more than {sys.get_int_max_str_digits():,} digits: send it as a string."
        ) from None
    # Nesting needs brackets, and NUL or a surrogate can only come from a \u escape (strict
    # JSON refuses them raw): a plain one-row text skips both walks.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        check_depth(value)
    if "\\u" in text:
        check_strings(value)
    return value


def too_deep() -> str:
    return f"The JSON is nested more than {MAX_DEPTH} levels deep."


def check_depth(value) -> None:
    """Refuse nesting over MAX_DEPTH, a level at a time (scalars are never stacked)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise JSONRefused(too_deep())
        deeper = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            deeper += [child for child in children if isinstance(child, dict | list)]
        level = deeper
        depth += 1


def check_strings(value) -> None:
    """Refuse strings, keys included, that PostgreSQL cannot store or UTF-8 cannot encode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                check_text(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            check_text(item)


def check_text(text: str) -> None:
    if "\x00" in text:
        raise JSONRefused(
            "A string holds the NUL character (\\u0000), which Kiln cannot store: remove it."
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JSONRefused(
                f"A string holds a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not "
                "text: send the character's full pair, or remove it."
            ) from None
