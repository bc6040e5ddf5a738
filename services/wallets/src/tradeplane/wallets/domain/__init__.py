"""Pure wallets model: currencies, wallets, the chart of accounts, the double-entry journal,
balances, transfers, fills and reconciliation. No I/O; every amount is a Decimal.

Modules:
  currencies      Currency (precision, tolerance), CurrencyCatalog, amount parsing/formatting
  wallets         Wallet (venue account or read-only on-chain address), Venue, WalletKind
  accounts        the chart of accounts (ledger account codes) and what each account means
  ledger          Posting, JournalEntry (validated, immutable), fingerprints, reversals, overdraft
  transfers       TransferRequest -> deposit / withdrawal / internal-move entry; adjustments
  fills           Fill from execution -> trade, fee and settlement entries
  balances        fold entries into balances per account or per (wallet, currency), as of a time
  reconciliation  compare ledger and venue balances -> ReconciliationRun with Discrepancy records
"""
