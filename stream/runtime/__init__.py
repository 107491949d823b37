"""The stream worker's runtime: the Faust app, its agents and timers, the intake consumer, topics, metrics,
and the faust-streaming workarounds (one module, naming the versions they are for)."""
