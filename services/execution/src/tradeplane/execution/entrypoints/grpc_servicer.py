"""ExecutionService over gRPC: maps requests to use cases and results back to protos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from tradeplane.execution.domain.risk import RiskRule
from tradeplane.execution.domain.trading_state import GLOBAL, TradingState
from tradeplane.execution.entrypoints import mapping as m
from tradeplane.execution.entrypoints import strategy_mapping as sm
from tradeplane.execution.service_layer.commands import ExecutionCommands, new_id, utcnow
from tradeplane.execution.service_layer.event_stream import EventStream
from tradeplane.execution.service_layer.queries import ExecutionQueries
from tradeplane.execution.service_layer.strategy_runner import StrategyRunner
from tradeplane.runtime.auth import current_principal
from tradeplane.runtime.errors import InvalidArgument, Unavailable
from tradeplane.strategies.proto import definition_to_proto
from trading.execution.v1 import execution_pb2 as pb
from trading.execution.v1 import execution_pb2_grpc

NOT_YET = "not implemented yet: issue 4 adds it with the {what}"


def _caller() -> str:
    principal = current_principal()
    subject = getattr(principal, "subject", None) if principal is not None else None
    return str(subject) if subject else "anonymous"


def _target(request: Any) -> str:
    """account id or GLOBAL from a `oneof target { account_id; all_accounts }`."""
    which = request.WhichOneof("target")
    if which == "account_id":
        if not request.account_id:
            raise InvalidArgument("account_id", "must not be empty (or set all_accounts)")
        return str(request.account_id)
    if which == "all_accounts":
        if not request.all_accounts:
            raise InvalidArgument("all_accounts", "must be true when set")
        return GLOBAL
    raise InvalidArgument("target", "give account_id or all_accounts")


class ExecutionServicer(execution_pb2_grpc.ExecutionServiceServicer):
    def __init__(
        self,
        commands: ExecutionCommands,
        queries: ExecutionQueries,
        stream: EventStream,
        shutdown_event: asyncio.Event,
        strategies: StrategyRunner | None = None,
    ) -> None:
        self._commands = commands
        self._queries = queries
        self._stream = stream
        self._shutdown = shutdown_event
        self._strategies = strategies

    # -- orders

    async def SubmitOrder(
        self, request: pb.SubmitOrderRequest, context: Any
    ) -> pb.SubmitOrderResponse:
        order_request = m.order_request(request)
        account_id = request.account_id or self._commands.default_account_id
        decision = m.decision_in(request, new_id(), account_id, utcnow())
        order = await self._commands.submit_order(order_request, decision)
        return pb.SubmitOrderResponse(order=m.order_out(order))

    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: Any
    ) -> pb.CancelOrderResponse:
        order = await self._commands.cancel_order(
            request.order_id, request.account_id, request.client_order_id
        )
        return pb.CancelOrderResponse(order=m.order_out(order))

    async def GetOrder(self, request: pb.GetOrderRequest, context: Any) -> pb.GetOrderResponse:
        order = await self._commands.find_order(
            request.order_id, request.account_id, request.client_order_id
        )
        return pb.GetOrderResponse(order=m.order_out(order))

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Any
    ) -> pb.ListOrdersResponse:
        venue = m.venue_in(request.venue)
        orders, token = await self._queries.list_orders(
            account_id=request.account_id,
            product_id=request.product_id,
            statuses=[m.status_in(s).value for s in request.statuses],
            strategy_instance_id=request.strategy_instance_id,
            venue=venue.value if venue else "",
            window=m.window_in(request),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListOrdersResponse(orders=[m.order_out(o) for o in orders], next_page_token=token)

    async def ListFills(self, request: pb.ListFillsRequest, context: Any) -> pb.ListFillsResponse:
        fills, token = await self._queries.list_fills(
            account_id=request.account_id,
            product_id=request.product_id,
            order_id=request.order_id,
            window=m.window_in(request),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListFillsResponse(fills=[m.fill_out(f) for f in fills], next_page_token=token)

    async def ListPositions(
        self, request: pb.ListPositionsRequest, context: Any
    ) -> pb.ListPositionsResponse:
        positions, token = await self._queries.list_positions(
            account_id=request.account_id,
            product_id=request.product_id,
            include_closed=request.include_closed,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListPositionsResponse(
            positions=[m.position_out(p) for p in positions], next_page_token=token
        )

    async def GetPortfolio(
        self, request: pb.GetPortfolioRequest, context: Any
    ) -> pb.GetPortfolioResponse:
        snapshot, state = await self._queries.portfolio(request.account_id, utcnow())
        return pb.GetPortfolioResponse(portfolio=m.portfolio_out(snapshot, state))

    async def ListBlocks(
        self, request: pb.ListBlocksRequest, context: Any
    ) -> pb.ListBlocksResponse:
        rule = m.enum_in(pb.RiskRule, "RISK_RULE_", RiskRule, request.rule, "rule")
        blocks, token = await self._queries.list_blocks(
            account_id=request.account_id,
            product_id=request.product_id,
            rule=rule.value if rule else "",
            window=m.window_in(request),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListBlocksResponse(blocks=[m.block_out(b) for b in blocks], next_page_token=token)

    # -- events

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: Any
    ) -> AsyncIterator[pb.StreamEventsResponse]:
        since = request.since_seq if request.HasField("since_seq") else None
        types = [m.event_type_in(t) for t in request.event_types]
        async for batch in self._stream.follow(
            since, list(request.account_ids), types, self._shutdown
        ):
            yield pb.StreamEventsResponse(
                events=[m.decode_event(e.seq, e.time, e.payload) for e in batch.events],
                reset=batch.reset,
            )

    # -- accounts, risk limits, trading state

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: Any
    ) -> pb.ListAccountsResponse:
        accounts, token = await self._queries.accounts(request.page_size, request.page_token)
        states = await self._queries.account_states([a.account_id for a in accounts])
        return pb.ListAccountsResponse(
            accounts=[m.account_out(a, states[a.account_id]) for a in accounts],
            next_page_token=token,
        )

    async def GetRiskLimits(
        self, request: pb.GetRiskLimitsRequest, context: Any
    ) -> pb.GetRiskLimitsResponse:
        limits, by, when = await self._queries.risk_limits(request.account_id)
        return pb.GetRiskLimitsResponse(limits=m.limits_out(limits, by, when))

    async def SetRiskLimits(
        self, request: pb.SetRiskLimitsRequest, context: Any
    ) -> pb.SetRiskLimitsResponse:
        if not request.HasField("limits"):
            raise InvalidArgument("limits", "required")
        account_id = request.limits.account_id or self._commands.default_account_id
        limits = m.risk_limits_in(request.limits, account_id)
        by = _caller()
        await self._commands.set_risk_limits(limits, by)
        stored, updated_by, when = await self._queries.risk_limits(account_id)
        return pb.SetRiskLimitsResponse(limits=m.limits_out(stored, updated_by, when))

    async def GetTradingState(
        self, request: pb.GetTradingStateRequest, context: Any
    ) -> pb.GetTradingStateResponse:
        view = await self._queries.trading_state(request.account_id)
        return pb.GetTradingStateResponse(
            global_state=m.state_out(view.global_state),
            account_state=m.state_out(view.account_state),
            effective_state=m.state_out(view.effective),
            last_global_change=m.state_change_out(view.last_global),
            last_account_change=m.state_change_out(view.last_account),
        )

    async def SetTradingState(
        self, request: pb.SetTradingStateRequest, context: Any
    ) -> pb.SetTradingStateResponse:
        target = _target(request)
        state = m.state_in(request.state)
        change = await self._commands.set_trading_state(target, state, request.reason, _caller())
        return pb.SetTradingStateResponse(change=m.state_change_out(change))

    async def HaltTrading(
        self, request: pb.HaltTradingRequest, context: Any
    ) -> pb.HaltTradingResponse:
        target = _target(request)
        change = await self._commands.set_trading_state(
            target, TradingState.HALTED, request.reason or "kill switch", _caller()
        )
        return pb.HaltTradingResponse(change=m.state_change_out(change))

    # -- decisions

    async def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: Any
    ) -> pb.ListDecisionsResponse:
        decisions, token = await self._queries.list_decisions(
            strategy=request.strategy,
            account_id=request.account_id,
            product_id=request.product_id,
            trace_id=request.trace_id,
            window=m.window_in(request),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListDecisionsResponse(
            decisions=[m.decision_out(x) for x in decisions], next_page_token=token
        )

    async def GetDecision(
        self, request: pb.GetDecisionRequest, context: Any
    ) -> pb.GetDecisionResponse:
        decision, orders = await self._queries.decision(request.decision_id)
        return pb.GetDecisionResponse(
            decision=m.decision_out(decision), orders=[m.order_out(o) for o in orders]
        )

    # -- later parts of issue 4 (UNIMPLEMENTED with a clear message)

    # Set by bootstrap: the venue's health and last reconciliation (entrypoints/venues.py).
    venue_statuses: Callable[[], pb.ListVenuesResponse] | None = None

    async def ListVenues(self, request: pb.ListVenuesRequest, context: Any) -> Any:
        if self.venue_statuses is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no venue status configured")
        assert self.venue_statuses is not None
        return self.venue_statuses()

    async def SummarizeDecisions(
        self, request: pb.SummarizeDecisionsRequest, context: Any
    ) -> pb.SummarizeDecisionsResponse:
        totals = await self._queries.summarize_decisions(request.account_id, m.window_in(request))
        return pb.SummarizeDecisionsResponse(
            summaries=[
                pb.DecisionSummary(
                    strategy=t.strategy,
                    decision_count=t.decisions,
                    order_count=t.orders,
                    fill_count=t.fills,
                    prompt_tokens=t.prompt_tokens,
                    completion_tokens=t.completion_tokens,
                    cost=[m.money(c, amount) for c, amount in sorted(t.cost.items())],
                    last_decision_time=m.ts(t.last_decision_time),
                )
                for t in totals
            ]
        )

    def _runner(self) -> StrategyRunner:
        if self._strategies is None:
            raise Unavailable("the live strategy runner is not enabled on this replica")
        return self._strategies

    async def ListStrategyDefinitions(
        self, request: pb.ListStrategyDefinitionsRequest, context: Any
    ) -> pb.ListStrategyDefinitionsResponse:
        definitions, token = self._runner().definitions(request.page_size, request.page_token)
        return pb.ListStrategyDefinitionsResponse(
            strategies=[definition_to_proto(d) for d in definitions], next_page_token=token
        )

    async def StartStrategy(
        self, request: pb.StartStrategyRequest, context: Any
    ) -> pb.StartStrategyResponse:
        if not request.strategy:
            raise InvalidArgument("strategy", "required")
        record = await self._runner().start_strategy(
            request.strategy,
            dict(request.params),
            list(request.product_ids),
            request.account_id,
            m.venue_in(request.venue),
        )
        return pb.StartStrategyResponse(instance=sm.instance_out(record))

    async def StopStrategy(
        self, request: pb.StopStrategyRequest, context: Any
    ) -> pb.StopStrategyResponse:
        record = await self._runner().stop_strategy(
            request.strategy_instance_id, request.cancel_open_orders
        )
        return pb.StopStrategyResponse(instance=sm.instance_out(record))

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Any
    ) -> pb.ListStrategiesResponse:
        records, token = await self._runner().list_strategies(
            sm.states_in(request.states), request.page_size, request.page_token
        )
        return pb.ListStrategiesResponse(
            instances=[sm.instance_out(r) for r in records], next_page_token=token
        )
