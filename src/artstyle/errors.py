"""Errors a user can act on. The CLI prints each as one line, never a traceback."""

from __future__ import annotations


class ArtstyleError(Exception):
    """Base class: something the user can fix (a path, a file, an option)."""


class ImageLoadError(ArtstyleError):
    """An image could not be decoded; the message is the reason, without the path."""


class DatasetError(ArtstyleError):
    """A painting folder cannot be used as given."""


class BundleError(ArtstyleError):
    """A model folder is missing, corrupt or from an unknown format version."""


class NotFittedError(ArtstyleError):
    """A classifier was used before fit() or load()."""


class DownloadError(ArtstyleError):
    """A dataset archive could not be fetched, verified or unpacked safely."""
