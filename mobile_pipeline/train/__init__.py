"""train stage: the stylizer's training recipe on Lightning.

* :mod:`.losses` – L1, multi-scale L1, Sobel edge loss, hinge / LSGAN adversarial losses.
* :mod:`.module` – ``StylizerModule``: paired stage, then mixed adversarial stage (manual optimisation).
* :mod:`.datamodule` – patch batches that are a pure function of (seed, rank, step); whole held-out images.
* :mod:`.callbacks` – sample grids per validation, batch-counted checkpoints, validation history.
* PSNR / SSIM against the teacher: :mod:`mobile_pipeline.quality.image` (one definition project-wide).
* :mod:`.checkpoint` – lean ``generator.pt`` files (``save_generator`` / ``load_generator``).
* :mod:`.runner` – ``train_stylizer``: config + dataset folder -> trained generator, metrics, checkpoints.

Submodules are imported on use so ``import mobile_pipeline.train`` stays light.
"""
