"""Networks: architecture spec, generator, discriminator, registry, complexity counters.

Import submodules directly (``from mobile_pipeline.nets.generator import build_generator``);
this package stays import-light so ``nets.spec`` can be used without torch.
"""
