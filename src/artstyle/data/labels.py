"""Class-name normalisation: folder names as people write them -> one canonical label.

`01_Byzantin_Iconography`, `16_AbstractArt`, `pop_art`, `Pop Art` and `pop-art` all
name a movement; training trees, test trees and models must agree on which one.
"""

from __future__ import annotations

import re
import unicodedata

# The movements of Pandora18k, the data set this tool's layout comes from.
PANDORA_MOVEMENTS = (
    "byzantine iconography", "early renaissance", "northern renaissance", "high renaissance", "baroque",
    "rococo", "romanticism", "realism", "impressionism", "post impressionism", "expressionism", "symbolism",
    "fauvism", "cubism", "surrealism", "abstract art", "naive art", "pop art",
)

# Spellings that differ by more than separators or case. Pandora18k itself writes
# "Byzantin"; the art-historical name has an "e".
ALIASES = {
    "byzantin iconography": "byzantine iconography",
    "byzantine icons": "byzantine iconography",
    "naif art": "naive art",
    "abstract": "abstract art",
    "post impressionist": "post impressionism",
}

_NUMERIC_PREFIX = re.compile(r"^\s*\d+\s*[._\-\s]\s*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-.]+")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_label(name: str) -> str:
    """Canonical display name of a class folder: 'pop art' for '18_PopArt'."""
    text = _NUMERIC_PREFIX.sub("", _strip_accents(name))
    text = _CAMEL.sub(" ", text)
    text = _SEPARATORS.sub(" ", text).strip().lower()
    return ALIASES.get(text, text)


def normalize_artist(name: str) -> str:
    """Artist identity for artist-disjoint splits: case and separators do not matter."""
    return _SEPARATORS.sub(" ", _strip_accents(name)).strip().casefold()


# Folder names that stand for "we do not know who painted it": they are not one person.
_PLACEHOLDER_ARTIST = re.compile(r"^(unknown|unidentified|anonymous|various|unattributed|misc)")


def is_placeholder_artist(name: str) -> bool:
    """'unknown', 'Unidentified_artists', 'anonymous': a folder of no one hand."""
    return bool(_PLACEHOLDER_ARTIST.match(normalize_artist(name)))


def count_artists(names) -> int:
    """Distinct painters among artist folder names: spelling variants and a painter filed under
    several movements count once, placeholders ("unknown") not at all; every screen counts so."""
    return len({normalize_artist(name) for name in names if not is_placeholder_artist(name)})


def humanise_artist(name: str) -> str:
    """A folder name as a person reads it: 'peter-paul-rubens' -> 'Peter Paul Rubens',
    'Picasso_Pablo' -> 'Picasso Pablo' (order kept: it cannot be told from the name)."""
    words = _SEPARATORS.sub(" ", name).split()
    return " ".join(w[:1].upper() + w[1:] if w.islower() else w for w in words) or name
