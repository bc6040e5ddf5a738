"""BacktestService over gRPC: maps requests to use cases and results back to protos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tradeplane.backtest.domain.monte_carlo import Resampling
from tradeplane.backtest.entrypoints import mapping
from tradeplane.backtest.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.backtest.service_layer.results import BacktestResults
from tradeplane.backtest.service_layer.runs import BacktestRuns
from tradeplane.backtest.service_layer.sweeps import BacktestSweeps
from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import strategy_definitions
from tradeplane.strategies.proto import definition_to_proto
from trading.backtest.v1 import backtest_pb2 as pb
from trading.backtest.v1 import backtest_pb2_grpc


class BacktestServicer(backtest_pb2_grpc.BacktestServiceServicer):
    def __init__(
        self,
        runs: BacktestRuns,
        results: BacktestResults,
        sweeps: BacktestSweeps,
        shutdown_event: asyncio.Event,
    ) -> None:
        self._runs = runs
        self._results = results
        self._sweeps = sweeps
        self._shutdown = shutdown_event

    # -- runs --------------------------------------------------------------------------------

    async def RunBacktest(
        self, request: pb.RunBacktestRequest, context: Any
    ) -> pb.RunBacktestResponse:
        if not request.HasField("config"):
            raise InvalidArgument("config", "is required")
        run = await self._runs.submit(mapping.spec_from_config(request.config))
        return pb.RunBacktestResponse(
            backtest_id=run.backtest_id, backtest=mapping.run_to_proto(run)
        )

    async def GetBacktest(
        self, request: pb.GetBacktestRequest, context: Any
    ) -> pb.GetBacktestResponse:
        run = await self._runs.get(request.backtest_id)
        return pb.GetBacktestResponse(backtest=mapping.run_to_proto(run))

    async def ListBacktests(
        self, request: pb.ListBacktestsRequest, context: Any
    ) -> pb.ListBacktestsResponse:
        runs, token = await self._runs.list_runs(
            strategy=request.strategy,
            product_id=request.product_id,
            statuses=mapping.statuses_from_proto(request.statuses),
            sweep_id=request.sweep_id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListBacktestsResponse(
            backtests=[mapping.run_to_proto(r) for r in runs], next_page_token=token
        )

    async def CancelBacktest(
        self, request: pb.CancelBacktestRequest, context: Any
    ) -> pb.CancelBacktestResponse:
        run = await self._runs.cancel(request.backtest_id)
        return pb.CancelBacktestResponse(backtest=mapping.run_to_proto(run))

    async def StreamProgress(
        self, request: pb.StreamProgressRequest, context: Any
    ) -> AsyncIterator[pb.StreamProgressResponse]:
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgument("target", "backtest_id or sweep_id is required")
        since = request.since_seq if request.HasField("since_seq") else None
        updates = (
            self._sweeps.follow(request.sweep_id, since, self._shutdown)
            if target == "sweep_id"
            else self._runs.follow(request.backtest_id, since, self._shutdown)
        )
        async for update in updates:
            yield pb.StreamProgressResponse(update=mapping.progress_to_proto(update))

    # -- results -----------------------------------------------------------------------------

    async def ListTrades(
        self, request: pb.ListTradesRequest, context: Any
    ) -> pb.ListTradesResponse:
        run = await self._runs.get(request.backtest_id)
        window = mapping.time_range(
            request.time_range, request.HasField("time_range"), "time_range"
        )
        page = await self._results.trades(
            run.backtest_id, window, request.page_size, request.page_token
        )
        return pb.ListTradesResponse(
            trades=[mapping.trade_to_proto(r, run.spec.product_id) for r in page.rows],
            next_page_token=page.next_token,
        )

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Any
    ) -> pb.ListOrdersResponse:
        run = await self._runs.get(request.backtest_id)
        window = mapping.time_range(
            request.time_range, request.HasField("time_range"), "time_range"
        )
        page = await self._results.orders(
            run.backtest_id, window, request.page_size, request.page_token
        )
        return pb.ListOrdersResponse(
            orders=[mapping.order_to_proto(r, run.spec.product_id) for r in page.rows],
            next_page_token=page.next_token,
        )

    async def GetEquity(self, request: pb.GetEquityRequest, context: Any) -> pb.GetEquityResponse:
        window = mapping.time_range(
            request.time_range, request.HasField("time_range"), "time_range"
        )
        page = await self._results.equity(
            request.backtest_id, window, request.max_points, request.page_size, request.page_token
        )
        return pb.GetEquityResponse(
            points=[mapping.equity_point_to_proto(r) for r in page.rows],
            next_page_token=page.next_token,
            downsampled=page.downsampled,
            total_points=page.total,
        )

    async def GetPlaybackCandles(
        self, request: pb.GetPlaybackCandlesRequest, context: Any
    ) -> pb.GetPlaybackCandlesResponse:
        run = await self._runs.get(request.backtest_id)
        window = mapping.time_range(
            request.time_range, request.HasField("time_range"), "time_range"
        )
        page = await self._results.playback_candles(
            run.backtest_id, window, request.page_size, request.page_token
        )
        product, interval = run.spec.product_id, run.spec.interval
        return pb.GetPlaybackCandlesResponse(
            candles=[mapping.candle_to_proto(r, product, interval) for r in page.rows],
            indicators=[
                mapping.indicator_series(c, v)
                for c, v in zip(page.columns, page.values, strict=True)
            ],
            markers=[mapping.marker_to_proto(m) for m in page.markers],
            next_page_token=page.next_token,
        )

    async def GetPlaybackState(
        self, request: pb.GetPlaybackStateRequest, context: Any
    ) -> pb.GetPlaybackStateResponse:
        if not request.HasField("timestamp"):
            raise InvalidArgument("timestamp", "is required")
        run = await self._runs.get(request.backtest_id)
        state = await self._results.state_at(
            run, request.timestamp.seconds, request.recent_fills_limit
        )
        return pb.GetPlaybackStateResponse(state=mapping.state_to_proto(state, run.spec.product_id))

    async def CompareBacktests(
        self, request: pb.CompareBacktestsRequest, context: Any
    ) -> pb.CompareBacktestsResponse:
        comparison = await self._results.compare(
            request.backtest_a_id, request.backtest_b_id, request.max_points, request.max_trades
        )
        product_a, product_b = comparison.a.spec.product_id, comparison.b.spec.product_id
        return pb.CompareBacktestsResponse(
            backtest_a=mapping.run_to_proto(comparison.a),
            backtest_b=mapping.run_to_proto(comparison.b),
            equity=[
                pb.ComparedEquityPoint(time=mapping.timestamp(t), equity_a=a, equity_b=b)
                for t, a, b in comparison.equity
            ],
            only_in_a=[mapping.trade_to_proto(r, product_a) for r in comparison.only_in_a],
            only_in_b=[mapping.trade_to_proto(r, product_b) for r in comparison.only_in_b],
        )

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Any
    ) -> pb.ListStrategiesResponse:
        limit = page_size(request.page_size, 100, 1000)
        offset = int(decode_token(request.page_token).get("o", 0)) if request.page_token else 0
        definitions = strategy_definitions()
        chunk = definitions[offset : offset + limit]
        more = offset + limit < len(definitions)
        return pb.ListStrategiesResponse(
            strategies=[definition_to_proto(d) for d in chunk],
            next_page_token=encode_token({"o": offset + limit}) if more else "",
        )

    # -- sweeps -------------------------------------------------------------------------------

    async def RunSweep(self, request: pb.RunSweepRequest, context: Any) -> pb.RunSweepResponse:
        sweep = await self._sweeps.submit(mapping.sweep_spec_from_config(request.config))
        return pb.RunSweepResponse(
            sweep_id=sweep.sweep_id, sweep=mapping.sweep_to_proto(sweep, None)
        )

    async def GetSweep(self, request: pb.GetSweepRequest, context: Any) -> pb.GetSweepResponse:
        sweep, best = await self._sweeps.get(request.sweep_id)
        return pb.GetSweepResponse(sweep=mapping.sweep_to_proto(sweep, best))

    async def ListSweeps(
        self, request: pb.ListSweepsRequest, context: Any
    ) -> pb.ListSweepsResponse:
        sweeps, token = await self._sweeps.list_sweeps(
            request.strategy, request.page_size, request.page_token
        )
        return pb.ListSweepsResponse(
            sweeps=[mapping.sweep_to_proto(s, None) for s in sweeps], next_page_token=token
        )

    async def ListSweepResults(
        self, request: pb.ListSweepResultsRequest, context: Any
    ) -> pb.ListSweepResultsResponse:
        order_by = (
            mapping.statistic_from_proto(request.order_by, "order_by") if request.order_by else None
        )
        results, token = await self._sweeps.results(
            request.sweep_id, order_by, request.page_size, request.page_token
        )
        return pb.ListSweepResultsResponse(
            results=[mapping.sweep_result_to_proto(r) for r in results], next_page_token=token
        )

    async def CancelSweep(
        self, request: pb.CancelSweepRequest, context: Any
    ) -> pb.CancelSweepResponse:
        sweep, best = await self._sweeps.cancel(request.sweep_id)
        return pb.CancelSweepResponse(sweep=mapping.sweep_to_proto(sweep, best))

    # -- robustness ----------------------------------------------------------------------------

    async def GetMonteCarloReport(
        self, request: pb.GetMonteCarloReportRequest, context: Any
    ) -> pb.GetMonteCarloReportResponse:
        method = (
            Resampling.BOOTSTRAP
            if request.method == pb.MONTE_CARLO_METHOD_BOOTSTRAP
            else Resampling.SHUFFLE
        )
        report = await self._results.monte_carlo(
            request.backtest_id, method, request.iterations, request.seed
        )
        return pb.GetMonteCarloReportResponse(
            total_return=mapping.distribution_to_proto(report.total_return),
            max_drawdown=mapping.distribution_to_proto(report.max_drawdown),
            iterations=report.iterations,
        )

    async def RunLookAheadCheck(
        self, request: pb.RunLookAheadCheckRequest, context: Any
    ) -> pb.RunLookAheadCheckResponse:
        if not request.HasField("config"):
            raise InvalidArgument("config", "is required")
        checked, violations = await self._runs.look_ahead(
            mapping.spec_from_config(request.config), request.samples
        )
        return pb.RunLookAheadCheckResponse(
            passed=not violations,
            samples_checked=checked,
            violations=[
                pb.LookAheadViolation(
                    time=mapping.timestamp(v.time),
                    with_future=v.with_future,
                    without_future=v.without_future,
                )
                for v in violations
            ],
        )
