"""The paper venue: simulated fills against the market service's live ticks."""
