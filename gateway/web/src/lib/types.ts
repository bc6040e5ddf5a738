// The protobuf JSON shapes the views read (trading.execution.v1, trading.market.v1, ...).
// Only the fields the UI shows; every field is optional because proto3 JSON omits defaults.

export interface Money {
  currency?: string;
  amount?: string;
}

export interface Order {
  orderId: string;
  clientOrderId?: string;
  accountId?: string;
  productId?: string;
  side?: string;
  type?: string;
  baseSize?: string;
  quoteSize?: string;
  limitPrice?: string;
  status?: string;
  filledSize?: string;
  averageFillPrice?: string;
  statusReason?: string;
  createTime?: string;
  updateTime?: string;
}

export interface Fill {
  fillId: string;
  orderId?: string;
  clientOrderId?: string;
  accountId?: string;
  productId?: string;
  side?: string;
  price?: string;
  size?: string;
  fee?: Money;
  liquidity?: string;
  time?: string;
}

export interface Position {
  accountId?: string;
  productId?: string;
  quantity?: string;
  averageEntryPrice?: string;
  markPrice?: string;
  notional?: string;
  realizedPnl?: string;
  unrealizedPnl?: string;
  updateTime?: string;
}

export interface Portfolio {
  accountId?: string;
  valuationCurrency?: string;
  cash?: Money[];
  equity?: string;
  grossExposure?: string;
  netExposure?: string;
  realizedPnl?: string;
  unrealizedPnl?: string;
  dailyRealizedPnl?: string;
  feesPaid?: string;
  drawdown?: string;
  openPositionCount?: number;
  openOrderCount?: number;
  tradingState?: string;
  asOf?: string;
}

export interface Block {
  blockId: string;
  accountId?: string;
  clientOrderId?: string;
  productId?: string;
  side?: string;
  baseSize?: string;
  price?: string;
  rule?: string;
  reason?: string;
  limit?: string;
  actual?: string;
  time?: string;
}

export interface TradingStateChange {
  accountId?: string;
  state?: string;
  reason?: string;
  time?: string;
}

export interface LiveEvent {
  seq?: string;
  time?: string;
  accountId?: string;
  orderSubmitted?: Order;
  orderUpdated?: Order;
  fill?: Fill;
  positionUpdate?: Position;
  tradeBlocked?: Block;
  portfolioUpdate?: Portfolio;
  tradingStateChanged?: TradingStateChange;
}

export interface LiveSnapshot {
  openOrders?: Order[];
  positions?: Position[];
  portfolios?: Portfolio[];
  recentFills?: Fill[];
  recentBlocks?: Block[];
  tradingState?: string;
}

export interface Product {
  productId: string;
  baseCurrency?: string;
  quoteCurrency?: string;
  status?: string;
  lastPrice?: string;
}

export interface Tick {
  productId: string;
  seq?: string;
  time?: string;
  price?: string;
  size?: string;
  side?: string;
  bestBid?: string;
  bestAsk?: string;
  tradeId?: string;
}

export interface Candle {
  productId?: string;
  interval?: string;
  start: string;
  open: string;
  high: string;
  low: string;
  close: string;
  volume?: string;
  closed?: boolean;
}

export interface IndicatorSeries {
  spec?: { name?: string; params?: Record<string, number> };
  output?: string;
  values?: (number | string)[];
}
