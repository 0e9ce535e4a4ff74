"""Who a caller is and what it may do: API keys, webhook secrets, client registration.

Why apart from ``store``: credentials are minted here and only their storable parts (a key id, a
hash, a secret the server must sign with) are handed to the store, so the store never sees a
plaintext API key and never chooses one.
"""
