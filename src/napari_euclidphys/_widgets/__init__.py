"""The napari docks: "Predict physical maps", "Radial profiles", "Train models".

Importing this package imports no Qt: the dock classes live in ``predict``, ``profiles`` and
``train`` (Qt), while ``_bundles`` (finding model bundles) and ``_results`` (prediction -> layer
data, residuals, metrics) are plain numpy and usable headless.
"""
