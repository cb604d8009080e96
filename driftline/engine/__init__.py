"""The streaming engine room: records (:mod:`.records`), the per-model monitor and its windows
(:mod:`.monitor`), window statistics (:mod:`.window_stats`), vectorised kernels (:mod:`.kernels`)
and the immutable snapshots exporters read (:mod:`.snapshot`)."""
