"""The operator tools behind `dunning`: the command line, audit-check, backtest, report, publish/tail, reconcile, the AsyncAPI document."""
