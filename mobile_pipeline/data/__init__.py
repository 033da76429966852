"""Data stage: photo sources, image validation, teachers, split, patch sampler, dataset.

Import submodules directly (``mobile_pipeline.data.dataset`` etc.); this package file stays
empty of imports so that ``mobile-pipeline --help`` does not load OpenCV.
"""
