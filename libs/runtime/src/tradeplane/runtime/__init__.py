"""tradeplane.runtime: the shared service runtime.

Import from the modules (``tradeplane.runtime.server``, ``.config``, ``.errors``, ``.auth``,
``.client``, ``.db``, ``.cache``...). Nothing is imported here on purpose, so that domain code
importing ``tradeplane.runtime.errors`` does not pull in grpc.
"""
