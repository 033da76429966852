"""Search stage: hardware-aware architecture search, one generator architecture per tier.

Modules (imported lazily; nothing heavy is imported here):

* :mod:`.ops` – trace a generator into runtime ops (the LUT's keys), single-op modules.
* :mod:`.litert_timing` – litert-torch conversion + LiteRT interpreter timing (1 thread).
* :mod:`.latency` – :class:`~.latency.LatencyModel`: LUT sums, tier scales, calibration.
* :mod:`.lut_build` – measure / resume ``device_tiers/latency_lut.json``.
* :mod:`.space` – the NNI model space over :class:`~mobile_pipeline.nets.spec.ArchSpec`.
* :mod:`.budget` – NNI FlopsProfiler MACs, tier budget and op-constraint checks.
* :mod:`.supernet` – weight-sharing supernet, sandwich training, extraction.
* :mod:`.driver` – :func:`~.driver.run_search`: the stage's entry point.
* :mod:`.report` – Pareto plot and search log.
"""
