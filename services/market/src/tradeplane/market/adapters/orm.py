"""SQLAlchemy models of the market service's tables."""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Boolean, Integer, MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Explicit constraint names so Alembic migrations are the same on SQLite and Postgres.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DECIMAL_TEXT = 40  # decimal strings: exact on every backend (SQLite has no true NUMERIC)


class Base(DeclarativeBase):
    metadata = metadata


class CandleRow(Base):
    """One OHLCV candle. The primary key (product_id, interval, start) is the unique key that
    upserts correct, and the index every range query walks."""

    __tablename__ = "candles"

    product_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(String(4), primary_key=True)  # "1m", "5m", ... "1d"
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds, UTC
    open: Mapped[str] = mapped_column(String(DECIMAL_TEXT))
    high: Mapped[str] = mapped_column(String(DECIMAL_TEXT))
    low: Mapped[str] = mapped_column(String(DECIMAL_TEXT))
    close: Mapped[str] = mapped_column(String(DECIMAL_TEXT))
    volume: Mapped[str] = mapped_column(String(DECIMAL_TEXT))
    trade_count: Mapped[int] = mapped_column(Integer)
    closed: Mapped[bool] = mapped_column(Boolean)


candles_table = cast(Table, CandleRow.__table__)
