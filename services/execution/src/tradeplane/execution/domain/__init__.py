"""Pure execution model: orders and their state machine, fills, positions, portfolio, the
pre-trade risk engine, trading states and the events they produce. No I/O, no grpc,
SQLAlchemy or Redis; money and quantities are ``Decimal``; times are timezone-aware UTC.

Modules: ``values`` (enums), ``decimals`` (parsing/formatting), ``products`` (increments),
``orders`` (request validation, fingerprint, Order state machine, bracket legs), ``fills``,
``positions``, ``portfolio``, ``trading_state``, ``risk``, ``events``.
"""
