"""NAV oracle publisher: exact fund NAVs from vault holdings and several oracles, published on-chain."""

__version__ = "0.1.0"
