"""Pure market model: products, simulated market, tick hub, order book. No I/O."""
