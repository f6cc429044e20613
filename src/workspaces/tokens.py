"""The form of every token `security.new_token` makes. Its own module, of the standard library
only: logs.py redacts any string of this form, and a process that only writes the log (the
supervisor of `serve --workers N`) must not load what security.py loads."""

import math

TOKEN_BYTES = 32
# After a token's prefix: TOKEN_BYTES of randomness in URL-safe base64, unpadded.
TOKEN_FORM = rf"[A-Za-z0-9_-]{{{math.ceil(TOKEN_BYTES * 4 / 3)}}}"
