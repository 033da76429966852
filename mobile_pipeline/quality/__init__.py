"""Image-quality measures shared by training, search, export gates, benchmarks and the report.

``image``: PSNR / SSIM (one definition for the whole project); ``look``: measures of the
cartoon look (ink lines, flatness); ``flicker``: temporal stability of video output.
"""
