"""Device knowledge: profile schema and loading (`devices/*.yaml`), whether a model fits, SSH devices.

Nothing here imports the latency estimate (edgepack/estimate builds on these profiles, not the other way round), so
listing or reading profiles stays light.
"""

from .fit import RAM_SHARE, STORAGE_SHARE, fits
from .profile import SOURCED_FIELDS, DeviceProfile, list_profiles, load_profile

__all__ = ["DeviceProfile", "fits", "list_profiles", "load_profile", "RAM_SHARE", "SOURCED_FIELDS", "STORAGE_SHARE"]
