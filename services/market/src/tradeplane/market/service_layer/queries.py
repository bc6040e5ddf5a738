"""Read use cases: ListProducts and GetCandles (with indicators computed once and cached)."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradeplane.indicators import (
    INDICATORS,
    IndicatorDef,
    spec_key,
    validate_spec,
)
from tradeplane.market.domain.candles import Candle, CandleArrays
from tradeplane.market.domain.hub import Sequenced
from tradeplane.market.domain.intervals import Interval, epoch_seconds
from tradeplane.market.domain.order_book import LiveBook, OrderBook, simulated_book
from tradeplane.market.domain.products import CATALOG, Product
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.service_layer import metrics
from tradeplane.market.service_layer.page_tokens import decode_token, encode_token
from tradeplane.market.service_layer.ports import CandleRepository
from tradeplane.runtime.cache import Cache
from tradeplane.runtime.errors import InvalidArgument, NotFound, Unavailable

PRODUCTS_DEFAULT_PAGE, PRODUCTS_MAX_PAGE = 100, 1000
CANDLES_DEFAULT_PAGE, CANDLES_MAX_PAGE = 500, 5000
BOOK_DEFAULT_DEPTH, BOOK_MAX_DEPTH = 50, 1000
INDICATOR_CACHE_TTL_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class ProductView:
    product: Product
    last_price: Decimal | None


@dataclass(frozen=True, slots=True)
class IndicatorRequest:
    name: str
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IndicatorSeries:
    name: str
    params: Mapping[str, float]  # as requested, with defaults filled in
    output: str
    values: npt.NDArray[np.float64]  # aligned with the page's candles; NaN = no value yet


@dataclass(frozen=True, slots=True)
class CandleQuery:
    product_id: str
    interval: Interval | None  # None = not set in the request
    start: int | None  # epoch seconds, inclusive; None = not set
    end: int | None  # epoch seconds, exclusive
    indicators: Sequence[IndicatorRequest] = ()
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class CandlePage:
    candles: list[Candle]
    indicators: list[IndicatorSeries]
    next_page_token: str


def _page_size(value: int, default: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if value > maximum:
        raise InvalidArgument("page_size", f"must be at most {maximum} (got {value})")
    return value or default


def _pack(outputs: Mapping[str, npt.NDArray[np.float64]]) -> bytes:
    buffer = io.BytesIO()
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in outputs.items()}
    np.savez(buffer, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _unpack(data: bytes) -> dict[str, npt.NDArray[np.float64]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class MarketQueries:
    def __init__(
        self,
        products: Sequence[Product],
        repo: CandleRepository,
        cache: Cache,
        last_tick: Callable[[str], Sequenced[Tick] | None] = lambda _pid: None,
        live_books: Mapping[str, LiveBook] | None = None,
    ) -> None:
        self._products = {p.product_id: p for p in sorted(products, key=lambda p: p.product_id)}
        self._repo = repo
        self._cache = cache
        self._last_tick = last_tick
        # The venue's level2 books (None: the feed has no depth; books are simulated).
        self.live_books = live_books

    def product(self, product_id: str, field_name: str = "product_id") -> Product:
        if not product_id:
            raise InvalidArgument(field_name, "is required")
        product = self._products.get(product_id)
        if product is None:
            raise NotFound(f"product {product_id!r} not found")
        return product

    def _last_price(self, product_id: str) -> Decimal | None:
        last = self._last_tick(product_id)
        return None if last is None else last.item.price

    # -- GetOrderBook ---------------------------------------------------------------------

    def book_depth(self, depth: int) -> int:
        if depth < 0 or depth > BOOK_MAX_DEPTH:
            raise InvalidArgument("depth", f"must be between 0 and {BOOK_MAX_DEPTH}")
        return depth or BOOK_DEFAULT_DEPTH

    def live_book(self, product_id: str) -> LiveBook | None:
        """The venue's book of the product when it is usable (snapshot received, no gap)."""
        book = None if self.live_books is None else self.live_books.get(product_id)
        return book if book is not None and book.ready else None

    def order_book(self, product_id: str, depth: int) -> OrderBook:
        product = self.product(product_id)
        depth = self.book_depth(depth)
        if self.live_books is not None:
            live = self.live_book(product_id)
            if live is None:
                raise Unavailable(f"no order book for {product_id} yet (waiting for a snapshot)")
            return live.view(depth)
        last = self._last_tick(product_id)
        if last is None:
            raise Unavailable(f"no market data for {product_id} yet")
        return self.book_at(product, last, depth or BOOK_DEFAULT_DEPTH)

    def book_at(self, product: Product, last: Sequenced[Tick], depth: int) -> OrderBook:
        """The simulated book right after tick `last`."""
        tick = last.item
        return simulated_book(
            product,
            seq=last.seq,
            time=tick.time,
            best_bid=tick.best_bid,
            best_ask=tick.best_ask,
            mean_size=CATALOG[product.product_id][1].mean_trade_size,
            depth=depth,
        )

    # -- ListProducts ---------------------------------------------------------------------

    async def list_products(self, page_size: int, page_token: str) -> tuple[list[ProductView], str]:
        size = _page_size(page_size, PRODUCTS_DEFAULT_PAGE, PRODUCTS_MAX_PAGE)
        after = ""
        if page_token:
            after = decode_token(page_token).get("after", "")
            if not isinstance(after, str) or not after:
                raise InvalidArgument("page_token", "malformed page token")
        ids = [pid for pid in self._products if pid > after]
        page, rest = ids[:size], ids[size:]
        views = [ProductView(self._products[pid], self._last_price(pid)) for pid in page]
        return views, encode_token({"after": page[-1]}) if rest else ""

    # -- GetCandles -----------------------------------------------------------------------

    async def get_candles(self, query: CandleQuery) -> CandlePage:
        self.product(query.product_id)
        if query.interval is None:
            raise InvalidArgument("interval", "is required")
        if query.start is None:
            raise InvalidArgument("start", "is required")
        if query.end is None:
            raise InvalidArgument("end", "is required")
        if query.end <= query.start:
            raise InvalidArgument("end", "must be after start")
        size = _page_size(query.page_size, CANDLES_DEFAULT_PAGE, CANDLES_MAX_PAGE)
        specs = [
            (
                spec.name,
                validate_spec(spec.name, dict(spec.params), field_prefix=f"indicators[{i}]"),
            )
            for i, spec in enumerate(query.indicators)
        ]
        page_start = query.start
        if query.page_token:
            page_start = self._resume_point(query)
        # The page alone: the warm-up candles are read only when an indicator is computed
        # (a cache miss), so a cached page costs one query for its candles and nothing more.
        _, page = await self._repo.page_with_warmup(
            query.product_id, query.interval, page_start, query.end, size + 1, 0
        )
        next_token = ""
        if len(page) > size:
            next_start = epoch_seconds(page[size].start)
            next_token = encode_token(
                {
                    "p": query.product_id,
                    "i": query.interval.code,
                    "s": query.start,
                    "e": query.end,
                    "n": next_start,
                }
            )
            page = page[:size]
        series: list[IndicatorSeries] = []
        if specs and page:
            series = await self._indicators(query, specs, page)
        return CandlePage(page, series, next_token)

    def _resume_point(self, query: CandleQuery) -> int:
        token = decode_token(query.page_token)
        assert query.interval is not None
        expected = {
            "p": query.product_id,
            "i": query.interval.code,
            "s": query.start,
            "e": query.end,
        }
        if any(token.get(k) != v for k, v in expected.items()):
            raise InvalidArgument("page_token", "does not belong to this query")
        resume = token.get("n")
        if not isinstance(resume, int) or not (query.start or 0) <= resume < (query.end or 0):
            raise InvalidArgument("page_token", "malformed page token")
        return resume

    async def _indicators(
        self,
        query: CandleQuery,
        specs: list[tuple[str, dict[str, float]]],
        page: list[Candle],
    ) -> list[IndicatorSeries]:
        """Compute each indicator over its own warm-up + the page, vectorised, and cache the
        page's values. Each indicator sees exactly the warm-up it needs (not the longest one
        requested), so its values never depend on the other indicators in the request; e.g.
        cumulative VWAP (period 0) is anchored at the page's first candle.

        Only pages of closed candles are cached (an open candle still changes); the key
        carries the page's first/last start and its length, so an extended range never reads
        a stale entry. The warm-up candles are read only on a miss, so a hit costs no query;
        values cached before older history was inserted under the warm-up (a backfill) stay
        until the entry's TTL (INDICATOR_CACHE_TTL_SECONDS)."""
        assert query.interval is not None
        interval = query.interval
        arrays: CandleArrays | None = None
        before: list[Candle] = []
        computed = 0  # loader calls, to tell cache hits from misses
        cacheable = all(c.closed for c in page)
        first, last = epoch_seconds(page[0].start), epoch_seconds(page[-1].start)
        longest = max(INDICATORS[name].warmup(params) for name, params in specs)

        async def candles_with_warmup() -> tuple[CandleArrays, int]:
            """The page plus the longest warm-up, read and built once per request."""
            nonlocal arrays, before
            if arrays is None:
                if longest > 0:
                    before, _ = await self._repo.page_with_warmup(
                        query.product_id, interval, first, first, 0, longest
                    )
                arrays = CandleArrays.from_candles([*before, *page])
            return arrays, len(before)

        result: list[IndicatorSeries] = []
        for name, params in specs:
            definition = INDICATORS[name]

            async def load(
                definition: IndicatorDef = definition, params: dict[str, float] = params
            ) -> bytes:
                nonlocal computed
                computed += 1
                candles, available = await candles_with_warmup()
                warmup = min(definition.warmup(params), available)
                outputs = definition.compute(candles[available - warmup :], params)
                return _pack({k: v[warmup:] for k, v in outputs.items()})

            if cacheable:
                key = (
                    f"ind:{query.product_id}:{query.interval.code}:{spec_key(name, params)}"
                    f":{first}:{last}:{len(page)}"
                )
                misses_before = computed
                data = await self._cache.get_or_load(key, INDICATOR_CACHE_TTL_SECONDS, load)
                hit = computed == misses_before
                metrics.INDICATOR_CACHE.labels("hit" if hit else "miss").inc()
            else:
                metrics.INDICATOR_CACHE.labels("uncacheable").inc()
                data = await load()
            outputs = _unpack(data)
            for output in definition.outputs:
                result.append(IndicatorSeries(name, params, output, outputs[output]))
        return result
