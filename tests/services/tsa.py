"""The local test TSA lives in the package (the demo uses it too); tests import it from here."""
from verify.localtsa import *  # noqa: F401,F403
from verify.localtsa import Pki, Tsa, TsaServer, _openssl, make_pki, start_tsa  # noqa: F401
