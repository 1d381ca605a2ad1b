"""What a model card's license says about commercial use. Conservative: anything not listed is "unknown"."""

from __future__ import annotations

_COMMERCIAL_OK = {
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "cc-by-4.0", "cc-by-3.0",
    "cc-by-sa-4.0", "cc-by-sa-3.0", "cc0-1.0", "unlicense", "isc", "zlib", "mpl-2.0", "afl-3.0", "artistic-2.0",
    "bsl-1.0", "ecl-2.0", "epl-2.0", "lgpl-3.0", "lgpl-2.1", "gpl-3.0", "gpl-2.0", "agpl-3.0", "openrail",
    "openrail++", "creativeml-openrail-m", "bigscience-openrail-m", "odc-by", "pddl", "wtfpl", "postgresql",
}
_NON_COMMERCIAL_PREFIXES = ("cc-by-nc", "cc-by-nc-sa", "cc-by-nc-nd", "bigscience-bloom-rail", "llama", "gemma")


def commercial_use(license_id: str | None) -> str:
    """'yes', 'no', 'restricted' (allowed under terms that need reading) or 'unknown'."""
    if not license_id:
        return "unknown"
    lid = license_id.strip().lower()
    if lid in _COMMERCIAL_OK:
        return "yes"
    if lid.startswith("cc-by-nc"):
        return "no"
    if lid.startswith(_NON_COMMERCIAL_PREFIXES):
        return "restricted"
    return "unknown"
