"""The command line's argument types and value parsers, shared by :mod:`mtbc.cli` (the
parser) and :mod:`mtbc.commands` (what each command does). Nothing here imports the audio or
model stack, so a bad argument is answered at once."""

from __future__ import annotations

import argparse

import yaml

__all__ = ["COLLECTION_KINDS", "Parser", "UsageError", "int_at_least", "non_negative_int",
           "parse_options", "parse_shard", "positive_int", "seconds_type"]

#: ``mtbc.data.collection.KINDS`` (a test checks): the parser needs no audio stack.
COLLECTION_KINDS = ("demo", "csv", "gtzan", "mtat", "openmic", "folder")


class UsageError(ValueError):
    """A bad command-line value; the message names it and how to fix it."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int, bound_text: str):
    """An argparse type: a whole number ``>= minimum`` (``bound_text`` says so in errors)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be {bound_text}")
        return value

    return parse


positive_int = int_at_least(1, "at least 1")
non_negative_int = int_at_least(0, "0 or more")


def seconds_type(minimum_exclusive: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds")
        if value < 0 or (minimum_exclusive and value == 0):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'more than 0' if minimum_exclusive else '0 or more'} seconds")
        return value
    return parse


def parse_options(pairs: list[str]) -> dict:
    """``["model=m-a-p/MERT-v1-95M", "chunk_seconds=10"]`` -> typed dict (YAML scalars)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"option {pair!r} is not KEY=VALUE (e.g. -o chunk_seconds=10)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"option {pair!r}: the value is not a YAML scalar; quote it") \
                from None
    return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes i/n (e.g. 0/4), not {text!r}") from None
    if not 0 <= i < n:
        raise UsageError(f"--shard {text}: needs 0 <= i < n (e.g. 0/4 ... 3/4)")
    return i, n
