"""Market-data service: feeds, candles, indicators and live streams."""
