"""Media storage: one small interface, a local and an SMB implementation."""
from .base import Storage, AtomicWriter, Entry  # noqa: F401
from .location import configure_smb, open_storage, parse_location, Location  # noqa: F401
