"""Price and holdings sources: the I/O edge that turns the outside world into quotes."""
