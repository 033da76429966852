"""Device catalog and classifier: device info -> tier + fallback chain.

Data lives in ``device_tiers/`` (facts, reviewed like code); this package validates and
indexes it. Modules (import what you need; nothing heavy is imported here):

* ``table``      ``load_tier_table(path=None) -> dict[str, TierSpec]``: budgets, variants,
                 delegates, forbidden ops, arch constraints, roofline per tier.
* ``catalog``    ``load_catalog() -> list[SocEntry]``, ``load_catalog_index() -> Catalog``
                 (``Catalog.lookup(manufacturer, model)``), ``normalize_vendor``, ``normalize_model``.
* ``families``   ``load_families() -> list[FamilyRule]`` (``device_tiers/families.yaml``) and
                 ``FamilyMatcher``: chips the catalog does not know, placed by their vendor's
                 numbering scheme (SM8xyz, MT69xx, s5e99x5, Tensor G<n>, iPhone<n>,<m>) or by a
                 GPU family that ships only in one vendor's flagships, corroborated by RAM.
* ``rules``      capability rules: ``FALLBACK_CHAINS``, ``TIER_BOUNDS`` (OS/RAM floors),
                 ``GPU_RULES`` (regex) and ``GPU_FAMILY_KEYS`` (the same as dict keys),
                 ``ACCELERATOR_TIERS``.
* ``overrides``  ``load_overrides()``, ``append_override(Override)``: calibrated device moves.
* ``htp``        ``tier_htp_socs(tier)``: Hexagon archs of a tier's Qualcomm SoCs;
                 ``load_htp_op_support()`` / ``htp_constraints()``: the HTP probe file and the
                 search constraints the tier table derives from it.
* ``classifier`` ``classify(info) -> TierDecision`` (never raises; ``matched_by`` catalog /
                 family / rules / default, ``why`` tokens, ``steps`` sentences), ``Classifier``
                 for a fixed snapshot, and ``tier_rules() -> dict`` (built in ``summary``):
                 the read-only, JSON-able summary of
                 all of the above that the manifest embeds and the Play device-targeting
                 export reads (per tier: SoC models with ``Build.SOC_MANUFACTURER`` spellings
                 and aliases, iOS machine ids, GPU families, reported accelerators, RAM and OS
                 floors; plus vendor aliases, family rules, GPU family keys and the fallback
                 chains).
* ``explain``    the sentences behind a decision, and ``render()`` for ``mobile-pipeline tiers explain``.
"""
