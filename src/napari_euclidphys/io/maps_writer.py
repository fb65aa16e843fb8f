"""Writing a prediction as a maps file (:mod:`napari_euclidphys.io.maps`), whole or streamed.

:func:`write_maps_fits` writes a :class:`~napari_euclidphys.inference.MapPrediction` held in memory;
:func:`write_maps_streamed` computes a lazy (dask) prediction slab by slab
(:mod:`napari_euclidphys.slabs`) and stores each slab straight into a pre-sized file, so memory
stays at one slab whatever the image size.  Both give the same file: an empty primary HDU with the
provenance (bundle name and sha256, model kind, feature set, H clip, input files), then per target
its map in physical units and its 1σ in dex, then ``FLAGS``; WCS and PIXSIZE of a reference image on
every extension.  A prediction without any usable value is refused (:class:`UselessOutputError`)
and nothing is written.

The imports (astropy, numpy) are made inside the functions: the predict command pays for them only
when it writes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["UselessOutputError", "check_useful", "fits_header_with_pixsize", "output_layout", "write_maps_fits",
           "write_maps_streamed"]


class UselessOutputError(ValueError):
    """The prediction holds no usable value (nothing evaluated, or a map all NaN): nothing is written."""


def check_useful(out, n_pixels, n_evaluated, n_finite: dict, clip_h) -> None:
    """UselessOutputError when nothing was evaluated or a target's map holds no finite value."""
    if n_evaluated == 0:
        raise UselessOutputError(
            f"{out}: useless prediction, not written: none of the {n_pixels} pixels was evaluated (every "
            f"pixel has a non-finite or non-positive band, or I_H at or below the bundle's clip of "
            f"{clip_h:g} MJy/sr); check the bands' unit and the bundle")
    from .maps import TARGET_EXTNAMES

    empty = [TARGET_EXTNAMES[t] for t, n in n_finite.items() if n == 0]
    if empty:
        raise UselessOutputError(
            f"{out}: useless prediction, not written: {', '.join(empty)} map(s) are NaN/inf in all "
            f"{n_evaluated} evaluated pixels (the bundle's scaling or model gives no finite value)")


def fits_header_with_pixsize(pixel_pc: float):
    """A header holding only PIXSIZE [pc] (the geometry a maps file copies besides the WCS)."""
    from astropy.io import fits

    header = fits.Header()
    header["PIXSIZE"] = (float(pixel_pc), "pixel side [pc]")
    return header


def _ascii(text) -> str:
    """FITS header strings must be printable ASCII: escape anything else (e.g. 'ü' -> '\\xfc')."""
    out = str(text).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in out)


def output_layout(bundle, targets, reference=None, inputs=()):
    """Headers of a predicted-maps file: (primary header, [(EXTNAME, header, what, target)]).

    ``what`` is "map" (physical units), "sigma" (dex) or "flags"; WCS/PIXSIZE from ``reference``
    (anything with ``wcs`` and ``header``: a band image, or a header from :func:`fits_header_with_pixsize`).
    """
    from astropy.io import fits

    from .maps import extension_header, extension_name, primary_header

    geometry = fits.Header()
    if reference is not None:
        if reference.wcs is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # relax=True keeps SIP distortion (CTYPE …-SIP, A_/B_ polynomials)
                geometry.update(reference.wcs.to_header(relax=True))
            lost = [name for name, v in (("CPDIS", reference.wcs.cpdis1 or reference.wcs.cpdis2),
                                         ("D2IM", reference.wcs.det2im1 or reference.wcs.det2im2)) if v]
            if lost:
                geometry["WCSNOTE"] = (f"{'+'.join(lost)} distortion of the input NOT copied",
                                       "positions from this WCS are approximate")
        for key in ("PIXSIZE",):
            if key in reference.header:
                geometry[key] = (reference.header[key], reference.header.comments[key])
    h = primary_header(_ascii(bundle.name), bundle.sha256 or "")
    h["MODKIND"] = (bundle.kind, "model kind: lr, rf, dnn")
    h["FEATSET"] = (bundle.feature_set, "feature set")
    h["CLIPH"] = (bundle.clip_h, "[MJy/sr] H_E clip; pixels at or below: not used")
    h["NEVAL"] = (0, "pixels evaluated")
    h["NOUTRNG"] = (0, "pixels outside the training feature range")
    h["FLAGBIT1"] = ("masked", "flag 1: invalid or I_H <= CLIPH, not used")
    h["FLAGBIT2"] = ("out of range", "flag value 2: features outside training range")
    for i, band_path in enumerate(inputs):
        h.add_history(_ascii(f"input {i + 1}: {Path(band_path).name}"))
    h.add_comment("Synthetic-trained models are NOT TNG50-trained; see the bundle card.")
    provenance = {"bundle_name": bundle.name, "bundle_sha256": bundle.sha256 or ""}
    extensions = []
    for t in targets:
        extensions.append((extension_name("predicted", t),
                           extension_header("predicted", t, geometry=geometry, **provenance), "map", t))
        extensions.append((extension_name("uncertainty", t),
                           extension_header("uncertainty", t, geometry=geometry, **provenance), "sigma", t))
    extensions.append((extension_name("flags"), extension_header("flags", geometry=geometry, **provenance),
                       "flags", None))
    return h, extensions


def write_maps_fits(path, prediction, bundle, reference=None, inputs=(), overwrite=False, noise=None) -> Path:
    """Write a MapPrediction as multi-extension FITS (atomically); WCS/PIXSIZE from ``reference``.

    With band errors propagated (``prediction.aleatoric``; ``noise`` = {"draws", "seed", "snr_min"}) the
    ``*_SIGMA`` extensions hold the total σ and ``*_ALEA`` the part due to the band noise.
    """
    import numpy as np

    from .maps import extension_header, extension_name, geometry_cards, write_maps

    primary, extensions = output_layout(bundle, prediction.targets, reference, inputs)
    primary["NEVAL"] = prediction.n_evaluated
    primary["NOUTRNG"] = prediction.n_out_of_range
    primary["SIGCAL"] = (bool(prediction.calibrated), "SIGMA calibrated on unseen galaxies (bundle)")
    if prediction.aleatoric:
        primary["SIGMA"] = ("model+band", "_SIGMA: sqrt(model^2 + band noise^2)")
        primary["NDRAWS"] = ((noise or {}).get("draws", 0), "Monte-Carlo draws of the band noise")
        primary["DRAWSEED"] = ((noise or {}).get("seed", 0), "seed of the draws")
        primary["SNRMIN"] = (float((noise or {}).get("snr_min", 0.0)), "flag 4 below this H_E S/N")
        primary["FLAGBIT3"] = ("low S/N", "flag value 4: H_E S/N < SNRMIN")
    planes = []
    for name, hdr, what, t in extensions:
        data = {"map": lambda: prediction.maps[t],
                "sigma": lambda: np.asarray(prediction.uncertainty[t], np.float32),
                "flags": lambda: prediction.flags.astype(np.uint8)}[what]()
        planes.append((name, hdr, data))
        if what == "sigma" and prediction.aleatoric:
            alea = extension_header("aleatoric", t, geometry=geometry_cards(hdr), bundle_name=bundle.name,
                                    bundle_sha256=bundle.sha256 or "")
            planes.append((extension_name("aleatoric", t), alea, np.asarray(prediction.aleatoric[t], np.float32)))
    write_maps(path, primary, planes, overwrite=overwrite)
    return Path(path)


def _power_of_ten(log_values):
    """10**x as float32; extrapolated predictions beyond float32 become inf without a warning."""
    import numpy as np

    with np.errstate(over="ignore"):
        return np.power(np.float32(10.0), log_values).astype(np.float32)


class _RawImageWriter:
    """Writes blocks (``writer[rows, cols] = block``) into one image's data area of a FITS file.

    ``offset`` is where the data area starts; rows are written with seek + write (big-endian, as
    FITS wants), so the output is never memory-mapped and stays out of the process's memory.
    """

    def __init__(self, f, offset: int, shape: tuple, dtype):
        import numpy as np

        self.f, self.offset, self.shape = f, offset, tuple(shape)
        self.dtype = np.dtype(dtype).newbyteorder(">")

    def __setitem__(self, key, value) -> None:
        import numpy as np

        rows, cols = key
        block = np.ascontiguousarray(np.asarray(value), dtype=self.dtype)
        r0, c0 = rows.start or 0, cols.start or 0
        width, item = self.shape[1], self.dtype.itemsize
        if c0 == 0 and block.shape[1] == width:  # whole rows: one contiguous byte range
            self.f.seek(self.offset + r0 * width * item)
            self.f.write(block.tobytes())
            return
        for i in range(block.shape[0]):
            self.f.seek(self.offset + ((r0 + i) * width + c0) * item)
            self.f.write(block[i].tobytes())


def write_maps_streamed(path, prediction, bundle, *, rows: int, reference=None, inputs=(), overwrite=False):
    """Compute a lazy prediction slab by slab and stream it into the maps file ``path``; return its path.

    ``prediction``: a :class:`~napari_euclidphys.inference.DaskMapPrediction` (``stack`` (2T + 1,
    ny, nx): T log10 maps, T spreads, the flags); ``rows``: rows per slab (best the stack's block
    rows: no block is computed twice).  A progress generator (one
    :class:`~napari_euclidphys.progress.Progress` per slab) returning the path.  The file has the
    layout of :func:`write_maps_fits`; it is written under a temporary name, rows by seek + write,
    and renamed when complete (removed on :class:`UselessOutputError` or an interruption).
    """
    import numpy as np
    from astropy.io import fits

    from ..slabs import over_row_slabs
    from .safe import atomic_path

    targets = tuple(prediction.targets)
    _, ny, nx = prediction.stack.shape
    primary, extensions = output_layout(bundle, targets, reference, inputs)
    n_t = len(targets)
    counts = {"evaluated": 0, "out_of_range": 0}
    n_finite = {t: 0 for t in targets}
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w+b") as f:
        # the file skeleton: headers, and data areas sized (not filled) by seeking past them
        f.write(primary.tostring().encode("ascii"))
        writers = []
        for name, hdr, what, t in extensions:
            dtype = np.uint8 if what == "flags" else np.float32
            hdu = fits.ImageHDU(np.zeros((1, 1), dtype), header=hdr, name=name)
            hdu.header["NAXIS1"], hdu.header["NAXIS2"] = nx, ny
            f.write(hdu.header.tostring().encode("ascii"))
            writers.append((_RawImageWriter(f, f.tell(), (ny, nx), dtype), what, t))
            size = ny * nx * np.dtype(dtype).itemsize
            f.seek(-(-size // 2880) * 2880 - 1, 1)
            f.write(b"\0")

        # one slab of whole rows at a time: memory stays at one slab whatever the image size (the
        # estimators use both cores inside a slab); the output is written, never memory-mapped
        def slab_out(i, r0, r1):
            slab = prediction.stack[:, r0:r1].compute(scheduler="synchronous")
            flags = slab[2 * n_t].astype(np.uint8)
            counts["evaluated"] += int(np.count_nonzero((flags & 1) == 0))
            counts["out_of_range"] += int(np.count_nonzero(flags & 2))
            region = (slice(r0, r0 + slab.shape[1]), slice(0, nx))
            for writer, what, t in writers:
                if what == "map":
                    values = _power_of_ten(slab[targets.index(t)])
                    n_finite[t] += int(np.count_nonzero(np.isfinite(values)))
                    writer[region] = values
                elif what == "sigma":
                    writer[region] = slab[n_t + targets.index(t)]
                else:
                    writer[region] = flags

        yield from over_row_slabs(ny, rows, slab_out, f"predicting {', '.join(targets)} on {ny}×{nx} pixels")
        check_useful(path, ny * nx, counts["evaluated"], n_finite, bundle.clip_h)  # the temporary file is removed
        primary["NEVAL"] = counts["evaluated"]
        primary["NOUTRNG"] = counts["out_of_range"]
        primary["SIGCAL"] = (getattr(bundle, "calibration", None) is not None,  # predict_pixels calibrates
                             "SIGMA calibrated on unseen galaxies (bundle)")
        f.seek(0)
        f.write(primary.tostring().encode("ascii"))  # same cards, same length: rewritten in place
    return Path(path)
