"""The benchmark suite's real data sets: package files (:mod:`.files`), cleaning and the backtest
rule (:mod:`.grid`), loaders per source (:mod:`.rdata`, :mod:`.wheels`) and the registry
(:mod:`.registry`). :mod:`benchmarks.datasets` is the public entry point."""
