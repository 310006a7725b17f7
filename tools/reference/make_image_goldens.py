#!/usr/bin/env python3
"""Reference outputs for prism's image decoding and preprocessing, from
Pillow and transformers' Pillow-backed SigLIP processor.

    pip install pillow numpy safetensors transformers   # torchvision: optional
    python3 tools/reference/make_image_goldens.py [--shared ../shared/testdata] [--out tests/data]

The reference for an image given as bytes is transformers' own path:
load_image (Image.open, ImageOps.exif_transpose, convert("RGB")) then
SiglipImageProcessorPil (what AutoImageProcessor(..., use_fast=False) or
backend="pil" gives): convert_to_rgb, Pillow resize, rescale, normalize.

It writes
    tests/data/images/*.png|jpg          small generated files covering every PNG
                                         colour type / bit depth / interlace, tRNS
                                         forms, JPEG subsampling / progressive / CMYK /
                                         YCCK / restart markers, EXIF and XMP orientation
                                         in every encoding Pillow reads, hostile headers
    tests/data/image_goldens.json        the manifest tests/test_image.c walks
    tests/data/image_goldens.safetensors resized pixels (U8 [h,w,3]) and pixel_values
                                         (F32 [3,h,w]) named by the manifest

Cases:
  files      every JPEG/PNG of ../shared/testdata/pillow and every generated file:
             Pillow's verdict; when it loads: the size after orientation, the CRC-32
             of the full RGB image, the transparent key transformers applies, the
             processor's RGB resized with BICUBIC to 16x16 (stored), 224x224 and
             37x29 (CRC-32)
  truncated  prefixes of some files: Pillow's verdict (and CRC when it loads)
  formula    large and extreme sizes (up to 4000x3000, 1x2000, 3000x2) whose pixels
             both this script and the C test compute from an integer formula, resized
             with each filter
  preproc    preprocessor_config.json variants: SiglipImageProcessorPil's
             pixel_values for real images (stored at 16..48 px, CRC at 224) and
             for a 16x16 image holding every value 0..255 in each channel
The fast (torchvision) processor's largest difference from the slow one over
the corpus is printed and kept in the manifest when torchvision is importable.
Deterministic: fixed seeds, no time stamps.
"""
import argparse
import base64
import io
import json
import os
import re
import struct
import tempfile
import warnings
import zlib

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file
import transformers
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import load_image
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

warnings.simplefilter("ignore")
try:
    transformers.logging.set_verbosity_error()
except Exception:
    pass

TENSORS = {}


def crc(arr):
    return zlib.crc32(np.ascontiguousarray(arr).tobytes()) & 0xFFFFFFFF


def reference_rgb(data):
    """transformers.load_image on the bytes (as base64, the way a server gets them)."""
    return load_image(base64.b64encode(data).decode())


def processor_rgb(im, do_convert_rgb=True):
    """The RGB array SiglipImageProcessorPil resizes: convert_to_rgb (a
    single transparent colour becomes white) or plain np.array."""
    return convert_to_rgb(im, return_numpy=True) if do_convert_rgb else np.array(im)


def pil_resize(arr, w, h, resample=Image.BICUBIC):
    return np.array(Image.fromarray(arr).resize((w, h), resample))


# ------------------------------------------------------------------ PNG writer


def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_rows(raw_rows, bpp, first_filter):
    """Filters each packed row with a rotating filter type (0..4)."""
    out, prev = bytearray(), bytes(len(raw_rows[0])) if raw_rows else b""
    for i, row in enumerate(raw_rows):
        ft = (first_filter + i) % 5
        f = bytearray(len(row))
        for j, x in enumerate(row):
            a = row[j - bpp] if j >= bpp else 0
            b = prev[j]
            c = prev[j - bpp] if j >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ft]
            f[j] = (x - pred) & 0xFF
        out.append(ft)
        out += f
        prev = row
    return bytes(out)


def _pack_rows(samples, bits):
    """samples: H x (W*C) ints -> list of packed rows (big-endian 16-bit)."""
    rows = []
    for r in samples:
        if bits == 16:
            rows.append(np.asarray(r, ">u2").tobytes())
        elif bits == 8:
            rows.append(np.asarray(r, np.uint8).tobytes())
        else:
            per = 8 // bits
            b = bytearray((len(r) + per - 1) // per)
            for i, v in enumerate(r):
                b[i // per] |= (int(v) & ((1 << bits) - 1)) << (8 - bits * (i % per + 1))
            rows.append(bytes(b))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_encode(pix, ct, bits, interlace=0, plte=None, trns=None, before=(), after=(),
               idat_split=1, first_filter=0):
    """pix: H x W x C array of sample values (C by colour type)."""
    h, w, c = pix.shape
    bpp = max(1, c * bits // 8)
    if interlace:
        data = b""
        for (x0, y0, dx, dy) in ADAM7:
            sub = pix[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            rows = _pack_rows(sub.reshape(sub.shape[0], -1), bits)
            data += _filter_rows(rows, bpp, first_filter)
    else:
        data = _filter_rows(_pack_rows(pix.reshape(h, -1), bits), bpp, first_filter)
    z = zlib.compress(data, 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, ct, 0, 0, interlace))
    for c_ in before:
        out += c_
    if plte is not None:
        out += chunk(b"PLTE", bytes(plte))
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns))
    step = max(1, (len(z) + idat_split - 1) // idat_split)
    for i in range(0, len(z), step):
        out += chunk(b"IDAT", z[i:i + step])
    for c_ in after:
        out += c_
    return out + chunk(b"IEND", b"")


# ------------------------------------------------------------------ EXIF/XMP


def tiff(entries, be=False, prefix=None, ifd_offset=8):
    """entries: (tag, type, count, payload bytes); returns a TIFF blob."""
    e = ">" if be else "<"
    head = prefix if prefix is not None else ((b"MM\x00\x2a") if be else (b"II\x2a\x00"))
    head += struct.pack(e + "I", ifd_offset)
    head += bytes(max(0, ifd_offset - len(head)))
    data_off = ifd_offset + 2 + 12 * len(entries) + 4
    ifd, extra = struct.pack(e + "H", len(entries)), b""
    for tag, typ, count, payload in entries:
        if len(payload) <= 4:
            ifd += struct.pack(e + "HHI", tag, typ, count) + payload.ljust(4, b"\0")
        else:
            ifd += struct.pack(e + "HHII", tag, typ, count, data_off + len(extra))
            extra += payload
    return head + ifd + struct.pack(e + "I", 0) + extra


def short(v, be=False):
    return struct.pack((">" if be else "<") + "H", v)


def exif_orientation(o, be=False):
    return b"Exif\0\0" + tiff([(0x010F, 2, 6, b"prism\0"), (0x0112, 3, 1, short(o, be))], be)


def xmp_packet(o, form="attr"):
    body = (f'tiff:Orientation="{o}"' if form == "attr" else f"><tiff:Orientation>{o}</tiff:Orientation")
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
            b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
            + body.encode() + b"/></rdf:RDF></x:xmpmeta>")


def jpeg_insert(data, *segments):
    """Inserts marker segments (marker byte, payload) right after SOI."""
    seg = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return data[:2] + seg + data[2:]


# ------------------------------------------------------------------ generated files


def photo(w, h, seed=0):
    """A smooth-plus-texture RGB test picture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.3 + seed)
    g = 127 + 120 * np.cos(y / max(h, 1) * 4.1)
    b = (x * 3 + y * 5) % 256
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def ycck_jpeg(cmyk):
    """A YCCK JPEG through TurboJPEG (Pillow cannot write one); None if absent."""
    try:
        import ctypes
        tj = ctypes.CDLL("libturbojpeg.so.0")
    except OSError:
        return None
    tj.tjInitCompress.restype = ctypes.c_void_p
    h = tj.tjInitCompress()
    buf, size = ctypes.POINTER(ctypes.c_ubyte)(), ctypes.c_ulong(0)
    src = np.ascontiguousarray(cmyk)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    r = tj.tjCompress2(ctypes.c_void_p(h), src.ctypes.data_as(ctypes.c_void_p), src.shape[1], 0,
                       src.shape[0], TJPF_CMYK, ctypes.byref(buf), ctypes.byref(size),
                       TJSAMP_420, 90, 0)
    out = bytes(ctypes.string_at(buf, size.value)) if r == 0 else None
    tj.tjFree(buf)
    tj.tjDestroy(ctypes.c_void_p(h))
    return out


def generated_files():
    """name -> bytes, covering what the decoders must handle."""
    files = {}
    rng = np.random.default_rng(7)
    base = photo(37, 23, 1)
    im = Image.fromarray(base)

    # JPEG: subsampling, progressive, restart markers, quality, sizes, colour spaces
    for sub in ("4:4:4", "4:2:2", "4:2:0", "4:1:1"):
        files[f"jpeg_{sub.replace(':', '')}.jpg"] = jpeg_bytes(im, quality=85, subsampling=sub)
    files["jpeg_progressive.jpg"] = jpeg_bytes(im, quality=80, progressive=True)
    files["jpeg_progressive_444.jpg"] = jpeg_bytes(im, quality=95, progressive=True, subsampling="4:4:4")
    files["jpeg_optimized.jpg"] = jpeg_bytes(im, quality=70, optimize=True)
    files["jpeg_restart.jpg"] = jpeg_bytes(im, quality=85, restart_marker_rows=1)
    files["jpeg_q5.jpg"] = jpeg_bytes(im, quality=5)
    files["jpeg_q100.jpg"] = jpeg_bytes(im, quality=100)
    files["jpeg_1x1.jpg"] = jpeg_bytes(Image.fromarray(photo(1, 1, 2)), quality=90)
    files["jpeg_odd_17x3.jpg"] = jpeg_bytes(Image.fromarray(photo(17, 3, 3)), quality=90)
    files["jpeg_gray.jpg"] = jpeg_bytes(im.convert("L"), quality=90)
    files["jpeg_gray_progressive.jpg"] = jpeg_bytes(im.convert("L"), quality=90, progressive=True)
    cmyk = np.concatenate([base, rng.integers(0, 256, (23, 37, 1), dtype=np.uint8)], -1)
    files["jpeg_cmyk.jpg"] = jpeg_bytes(Image.fromarray(cmyk, "CMYK"), quality=90)
    files["jpeg_cmyk_progressive.jpg"] = jpeg_bytes(Image.fromarray(cmyk, "CMYK"), quality=90,
                                                    progressive=True)
    y = ycck_jpeg(cmyk)
    if y:
        files["jpeg_ycck.jpg"] = y
    plain = jpeg_bytes(Image.fromarray(photo(40, 30, 4)), quality=90)
    # every orientation, and EXIF in the encodings Pillow reads
    for o in range(1, 9):
        files[f"jpeg_orient{o}.jpg"] = jpeg_insert(plain, (0xE1, exif_orientation(o)))
    files["jpeg_orient6_be.jpg"] = jpeg_insert(plain, (0xE1, exif_orientation(6, be=True)))
    files["jpeg_orient_long.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 4, 1, struct.pack("<I", 8))])))
    files["jpeg_orient_byte.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 1, 1, b"\x06")])))
    files["jpeg_orient_count2.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 3, 2, short(5) + short(2))])))
    files["jpeg_orient_count3_offset.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 3, 3, short(7) + short(2) + short(2))])))
    files["jpeg_orient_rational.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 5, 1, struct.pack("<II", 12, 2))])))
    files["jpeg_orient_9.jpg"] = jpeg_insert(plain, (0xE1, exif_orientation(9)))
    files["jpeg_orient_dup.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 3, 1, short(3)), (0x0112, 3, 1, short(8))])))
    files["jpeg_orient_after_bad_entry.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x010F, 2, 5000, b""), (0x0112, 3, 1, short(6))])[:60]))
    files["jpeg_exif_ifd_offset_out.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x0112, 3, 1, short(6))], ifd_offset=9999)[:40]))
    files["jpeg_exif_double_header.jpg"] = jpeg_insert(plain, (0xE1, b"Exif\0\0" + exif_orientation(3)))
    files["jpeg_exif_split.jpg"] = jpeg_insert(  # the IFD continues in a second segment
        plain, (0xE1, exif_orientation(6)[:20]), (0xE1, b"Exif\0\0" + exif_orientation(6)[20:]))
    files["jpeg_exif_then_exif.jpg"] = jpeg_insert(plain, (0xE1, exif_orientation(2)), (0xE1, exif_orientation(4)))
    files["jpeg_xmp_attr.jpg"] = jpeg_insert(plain, (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(6)))
    files["jpeg_xmp_elem.jpg"] = jpeg_insert(plain, (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(8, "elem")))
    files["jpeg_xmp_and_exif.jpg"] = jpeg_insert(
        plain, (0xE1, exif_orientation(1)), (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(6)))
    files["jpeg_xmp_exif_no_tag.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0" + tiff([(0x010F, 2, 6, b"prism\0")])),
        (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(7)))
    files["jpeg_exif_broken_header.jpg"] = jpeg_insert(
        plain, (0xE1, b"Exif\0\0XXXX\0\0\0\x08"), (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(6)))
    files["jpeg_exif_bigtiff.jpg"] = jpeg_insert(plain, (0xE1, b"Exif\0\0II\x2b\x00\x08\x00\x00\x00"))
    files["jpeg_orient6_progressive.jpg"] = jpeg_insert(
        jpeg_bytes(Image.fromarray(photo(40, 30, 4)), quality=90, progressive=True), (0xE1, exif_orientation(6)))
    files["jpeg_orient5_gray.jpg"] = jpeg_insert(
        jpeg_bytes(Image.fromarray(photo(40, 30, 4)).convert("L"), quality=90), (0xE1, exif_orientation(5)))
    app0_end = 4 + struct.unpack(">H", plain[4:6])[0]  # Pillow and libjpeg skip the junk
    files["jpeg_junk_between_markers.jpg"] = plain[:app0_end] + b"\x00\x13\x37" + plain[app0_end:]
    # hostile JPEG headers
    sof = plain.find(b"\xff\xc0")
    files["bad_jpeg_12bit.jpg"] = plain[:sof + 4] + b"\x0c" + plain[sof + 5:]
    files["bad_jpeg_2comp.jpg"] = plain[:sof + 9] + b"\x02" + plain[sof + 10:]
    files["bad_jpeg_zero_height.jpg"] = plain[:sof + 5] + b"\x00\x00" + plain[sof + 7:]
    files["bad_jpeg_huge.jpg"] = plain[:sof + 5] + b"\xff\xff\xff\xff" + plain[sof + 9:]
    files["bad_jpeg_no_sof.jpg"] = plain[:sof] + plain[sof + 2 + struct.unpack(">H", plain[sof + 2:sof + 4])[0]:]
    sos = plain.find(b"\xff\xda")
    files["bad_jpeg_corrupt_scan.jpg"] = plain[:sos + 40] + bytes(rng.integers(0, 256, 200, dtype=np.uint8)) + plain[sos + 240:]
    files["bad_jpeg_header_only.jpg"] = plain[:sos]

    # PNG: every colour type and bit depth, interlaced or not
    h, w = 23, 37
    def gray(bits):
        return (rng.integers(0, 1 << bits, (h, w, 1))).astype(np.int64)
    for bits in (1, 2, 4, 8, 16):
        files[f"png_gray{bits}.png"] = png_encode(gray(bits), 0, bits, first_filter=bits)
        files[f"png_gray{bits}_adam7.png"] = png_encode(gray(bits), 0, bits, interlace=1)
    # 16-bit gray with values below 256 too (Pillow clips I;16 to 255)
    g16 = rng.integers(0, 600, (h, w, 1)).astype(np.int64)
    files["png_gray16_low.png"] = png_encode(g16, 0, 16)
    for bits in (8, 16):
        rgb = rng.integers(0, 1 << bits, (h, w, 3)).astype(np.int64)
        files[f"png_rgb{bits}.png"] = png_encode(rgb, 2, bits)
        files[f"png_rgb{bits}_adam7.png"] = png_encode(rgb, 2, bits, interlace=1)
        ga = rng.integers(0, 1 << bits, (h, w, 2)).astype(np.int64)
        files[f"png_ga{bits}.png"] = png_encode(ga, 4, bits, first_filter=2)
        files[f"png_ga{bits}_adam7.png"] = png_encode(ga, 4, bits, interlace=1)
        rgba = rng.integers(0, 1 << bits, (h, w, 4)).astype(np.int64)
        files[f"png_rgba{bits}.png"] = png_encode(rgba, 6, bits, first_filter=3)
        files[f"png_rgba{bits}_adam7.png"] = png_encode(rgba, 6, bits, interlace=1)
    for bits in (1, 2, 4, 8):
        n = 1 << bits
        pal = rng.integers(0, 256, n * 3).astype(np.uint8)
        idx = rng.integers(0, n, (h, w, 1)).astype(np.int64)
        files[f"png_pal{bits}.png"] = png_encode(idx, 3, bits, plte=pal)
        files[f"png_pal{bits}_adam7.png"] = png_encode(idx, 3, bits, plte=pal, interlace=1)
        one = np.full(n, 255, np.uint8)
        one[n // 2] = 0
        files[f"png_pal{bits}_trns_single.png"] = png_encode(idx, 3, bits, plte=pal, trns=one)
        files[f"png_pal{bits}_trns_alpha.png"] = png_encode(
            idx, 3, bits, plte=pal, trns=rng.integers(0, 256, n).astype(np.uint8))
    idx8 = rng.integers(0, 256, (h, w, 1)).astype(np.int64)
    files["png_pal8_short_plte.png"] = png_encode(idx8, 3, 8, plte=rng.integers(0, 256, 30).astype(np.uint8))
    files["png_pal8_short_trns.png"] = png_encode(idx8, 3, 8, plte=rng.integers(0, 256, 768).astype(np.uint8),
                                                  trns=bytes([255, 255, 0]))
    files["png_pal8_trns_empty.png"] = png_encode(idx8, 3, 8, plte=rng.integers(0, 256, 768).astype(np.uint8),
                                                  trns=b"")
    files["png_pal4_no_plte.png"] = png_encode(rng.integers(0, 16, (h, w, 1)).astype(np.int64), 3, 4)
    files["png_pal8_odd_plte_len.png"] = png_encode(idx8, 3, 8, plte=rng.integers(0, 256, 100).astype(np.uint8))
    # tRNS on gray and RGB: the key transformers paints white
    for bits, t in ((1, 0), (1, 1), (2, 3), (4, 9), (8, 77), (8, 300), (16, 5), (16, 40000)):
        px = gray(bits)
        px[0, :5] = t if t < (1 << bits) else px[0, :5]
        files[f"png_gray{bits}_trns{t}.png"] = png_encode(px, 0, bits, trns=struct.pack(">H", t))
    for bits, key in ((8, (10, 20, 30)), (16, (0x1234, 0x0010, 0xFFFF))):
        px = rng.integers(0, 1 << bits, (h, w, 3)).astype(np.int64)
        if bits == 8:
            px[1, :7] = key
        else:  # pixels whose high bytes equal the key's low bytes (Pillow's masking)
            px[1, :7] = (0x34 << 8, 0x10 << 8 | 5, 0xFF << 8)
        files[f"png_rgb{bits}_trns.png"] = png_encode(px, 2, bits, trns=struct.pack(">HHH", *key))
    # orientation in PNG: eXIf, tEXt "exif", "Raw profile type exif", XMP (iTXt, zTXt, tEXt)
    pimg = photo(40, 30, 5).astype(np.int64)
    ex6 = exif_orientation(6)[6:]
    files["png_exif_chunk.png"] = png_encode(pimg, 2, 8, before=[chunk(b"eXIf", ex6)])
    files["png_exif_after_idat.png"] = png_encode(pimg, 2, 8, after=[chunk(b"eXIf", exif_orientation(8)[6:])])
    files["png_exif_text.png"] = png_encode(pimg, 2, 8, before=[chunk(b"tEXt", b"exif\0" + exif_orientation(3))])
    hexs = exif_orientation(5).hex()
    raw_profile = ("\nexif\n" + f"{len(exif_orientation(5)):8d}\n" +
                   "\n".join(hexs[i:i + 72] for i in range(0, len(hexs), 72)) + "\n").encode()
    files["png_raw_profile_ztxt.png"] = png_encode(
        pimg, 2, 8, before=[chunk(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(raw_profile))])
    files["png_raw_profile_text.png"] = png_encode(
        pimg, 2, 8, before=[chunk(b"tEXt", b"Raw profile type exif\0" + raw_profile)])
    files["png_raw_profile_bad_hex.png"] = png_encode(
        pimg, 2, 8, before=[chunk(b"tEXt", b"Raw profile type exif\0\nexif\n 10\nzz12\n")])
    files["png_xmp_itxt.png"] = png_encode(
        pimg, 2, 8, before=[chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp_packet(6))])
    files["png_xmp_itxt_z.png"] = png_encode(
        pimg, 2, 8, after=[chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp_packet(7, "elem")))])
    files["png_xmp_text.png"] = png_encode(
        pimg, 2, 8, before=[chunk(b"tEXt", b"XML:com.adobe.xmp\0" + xmp_packet(2))])
    files["png_exif_and_xmp.png"] = png_encode(
        pimg, 2, 8, before=[chunk(b"eXIf", exif_orientation(1)[6:]),
                            chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp_packet(6))])
    files["png_orient6_pal.png"] = png_encode(
        idx8[:, :, :], 3, 8, plte=rng.integers(0, 256, 768).astype(np.uint8), before=[chunk(b"eXIf", ex6)])
    files["png_1x1.png"] = png_encode(np.array([[[200, 100, 50]]]), 2, 8)
    files["png_many_idat.png"] = png_encode(pimg, 2, 8, idat_split=9)
    files["png_idat_after_text.png"] = png_encode(pimg, 2, 8, idat_split=1)[:-12] + chunk(b"tEXt", b"a\0b") + \
        chunk(b"IDAT", b"junk") + chunk(b"IEND", b"")
    files["png_text_ztxt_corrupt.png"] = png_encode(pimg, 2, 8, before=[chunk(b"zTXt", b"Comment\0\0notzlib")])
    files["png_unknown_ancillary.png"] = png_encode(pimg, 2, 8, before=[chunk(b"prIv", b"hello")])
    # hostile PNGs
    good = files["png_rgb8.png"]
    files["bad_png_ihdr_crc.png"] = good[:29] + bytes([good[29] ^ 1]) + good[30:]
    idat = good.find(b"IDAT")
    files["png_idat_crc.png"] = good[:-16] + bytes([good[-16] ^ 0xFF]) + good[-15:]  # Pillow ignores it
    files["bad_png_idat_data.png"] = good[:idat + 30] + bytes(40) + good[idat + 70:]
    files["bad_png_bit_depth.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 3, 2, 0, 0, 0)) + good[33:]
    files["bad_png_zero_width.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)) + good[33:]
    files["bad_png_huge.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + good[33:]
    files["bad_png_filter_method.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 1, 0)) + good[33:]
    files["bad_png_ztxt_method.png"] = png_encode(pimg, 2, 8, before=[chunk(b"zTXt", b"Comment\0\1" + zlib.compress(b"x"))])
    files["bad_png_ztxt_bomb.png"] = png_encode(pimg, 2, 8, after=[chunk(b"zTXt", b"Comment\0\0" + zlib.compress(bytes(2 << 20), 9))])
    files["bad_png_itxt_bomb.png"] = png_encode(pimg, 2, 8, before=[chunk(b"iTXt", b"Comment\0\1\0\0\0" + zlib.compress(bytes(2 << 20), 9))])
    files["bad_png_trns_short.png"] = png_encode(pimg, 2, 8, trns=b"\0\1")
    files["bad_png_palette_large.png"] = png_encode(idx8, 3, 8, plte=bytes(800))
    files["bad_png_chunk_type.png"] = good[:33] + b"\0\0\0\0x!yz\0\0\0\0" + good[33:]
    files["bad_png_no_idat.png"] = good[:33] + chunk(b"IEND", b"")
    files["bad_png_idat_short.png"] = good[:idat + 20]
    return files


# ------------------------------------------------------------------ formula images


def formula_image(w, h):
    """Same integer formula as tests/test_image.c: texture blocks and gradients."""
    y, x = np.mgrid[0:h, 0:w].astype(np.uint64)
    out = np.empty((h, w, 3), np.uint8)
    m = np.uint64(0xFFFFFFFF)
    for c in range(3):
        v = (x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ np.uint64((c + 1) * 83492791)
        v &= m
        v ^= v >> np.uint64(13)
        v = (v * np.uint64(0x5BD1E995)) & m
        v ^= v >> np.uint64(15)
        smooth = (x * np.uint64(3) + y * np.uint64(5) + np.uint64(c * 85)) & np.uint64(255)
        block = ((x >> np.uint64(4)) + (y >> np.uint64(4))) & np.uint64(1)
        out[:, :, c] = np.where(block == 1, v & np.uint64(255), smooth).astype(np.uint8)
    return out


FORMULA = [  # (w, h, out_w, out_h, filter)
    (4000, 3000, 224, 224, 3), (1, 2000, 32, 32, 3), (3000, 2, 32, 32, 3), (2000, 1, 48, 48, 3),
    (1, 1, 224, 224, 3), (2, 2, 224, 224, 3), (5, 7, 48, 48, 3), (225, 224, 224, 224, 3),
    (224, 500, 224, 224, 3), (1000, 224, 224, 224, 3), (300, 900, 224, 224, 3),
    (31, 1000, 48, 48, 3), (1024, 768, 224, 224, 3), (64, 64, 61, 57, 3), (64, 64, 60, 56, 3),
    (97, 61, 32, 48, 2), (97, 61, 32, 48, 1), (97, 61, 32, 48, 4), (97, 61, 32, 48, 5),
    (40, 30, 64, 50, 2), (40, 30, 64, 50, 1), (40, 30, 64, 50, 4), (40, 30, 64, 50, 5),
    (40, 30, 64, 50, 3), (384, 384, 224, 224, 3), (640, 480, 384, 384, 3),
]


# ------------------------------------------------------------------ preprocessing


def lut_image():
    i = np.arange(256).reshape(16, 16)
    return np.stack([i, (i * 7 + 3) & 255, 255 - i], -1).astype(np.uint8)


CONFIGS = [  # name, preprocessor_config.json text (None: no file)
    ("default", None),
    ("hub_siglip", json.dumps({
        "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor", "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"height": 32, "width": 32}})),
    ("imagenet_48x32_bilinear", json.dumps({
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 2,
        "size": {"height": 48, "width": 32}})),
    ("no_normalize", json.dumps({"do_normalize": False, "size": {"height": 32, "width": 32}})),
    ("no_rescale", json.dumps({"do_rescale": False, "image_mean": 127.5, "image_std": 127.5,
                               "size": {"height": 32, "width": 32}})),
    ("lanczos_24", json.dumps({"rescale_factor": 0.00784313725490196, "image_mean": [1.0, 1.0, 1.0],
                               "image_std": [1.0, 1.0, 1.0], "resample": 1,
                               "size": {"height": 24, "width": 24}})),
    ("box_16", json.dumps({"resample": 4, "size": {"height": 16, "width": 16}})),
    ("hamming_16", json.dumps({"resample": 5, "size": {"height": 16, "width": 16}})),
    ("no_convert_rgb", json.dumps({"do_convert_rgb": False, "size": {"height": 32, "width": 32}})),
]


def processor_for(cfg_text, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    if cfg_text is not None:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            f.write(cfg_text)
        return SiglipImageProcessorPil.from_pretrained(d)
    return SiglipImageProcessorPil()


def pixel_values(proc, im):
    return proc(im, return_tensors="np")["pixel_values"][0].astype(np.float32)


# ------------------------------------------------------------------ main


def file_case(cid, src, data, keep_r16=True):
    case = {"id": cid, "src": src, "len": len(data)}
    try:
        im = reference_rgb(data)
        arr = np.array(im)
    except Exception:  # Pillow or load_image refused it: record Pillow's own words
        case["ok"] = False
        try:  # load_image's steps, without its wrapping of the error
            from PIL import ImageOps
            ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
            case["pillow_error"] = "load_image failed"
        except Exception as e:
            msg = re.sub(r" <_io.BytesIO object at 0x[0-9a-f]+>", "", str(e))  # no addresses
            case["pillow_error"] = f"{type(e).__name__}: {msg}"[:200]
        return case
    case["ok"] = True
    case["w"], case["h"] = im.size
    case["rgb_crc"] = crc(arr)
    # Pixels transformers' convert_to_rgb paints white: those convert("RGBA")
    # makes transparent through info["transparency"].
    if im.info.get("transparency") is not None:
        case["key_pixels"] = int((np.array(im.convert("RGBA"))[:, :, 3] == 0).sum())
    else:
        case["key_pixels"] = 0
    prgb = processor_rgb(im)
    r16 = pil_resize(prgb, 16, 16)
    case["crc16"] = crc(r16)
    if keep_r16:  # the array too, so a failure can show where it differs
        TENSORS[cid + ".r16"] = r16
        case["r16"] = cid + ".r16"
    case["crc224"] = crc(pil_resize(prgb, 224, 224))
    case["crc37x29"] = crc(pil_resize(prgb, 37, 29))
    return case


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap.add_argument("--shared", default=os.path.join(repo, "..", "shared", "testdata"))
    ap.add_argument("--out", default=os.path.join(repo, "tests", "data"))
    args = ap.parse_args()

    img_dir = os.path.join(args.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    for f in os.listdir(img_dir):
        os.remove(os.path.join(img_dir, f))
    gen = generated_files()
    for name, data in gen.items():
        with open(os.path.join(img_dir, name), "wb") as f:
            f.write(data)

    manifest = {
        "pillow": PIL.__version__, "transformers": transformers.__version__,
        "note": "made by tools/reference/make_image_goldens.py; do not edit",
        "files": [], "truncated": [], "formula": [], "preproc": [], "lut": [],
    }

    # every corpus file and generated file
    corpus = []
    root = os.path.join(args.shared, "pillow")
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            if f.lower().endswith((".png", ".jpg", ".jpeg")):
                corpus.append(os.path.relpath(os.path.join(dp, f), args.shared))
    n = 0
    sources = [("shared:" + p, open(os.path.join(args.shared, p), "rb").read()) for p in sorted(corpus)]
    sources += [("data:images/" + k, v) for k, v in sorted(gen.items())]
    for src, data in sources:
        keep = src.startswith("data:") or n % 4 == 0
        manifest["files"].append(file_case(f"f{n:04d}", src, data, keep))
        n += 1

    # truncated prefixes
    trunc_src = ["shared:pillow/hopper.jpg", "shared:pillow/flower.jpg", "shared:pillow/app13-multiple.jpg",
                 "shared:pillow/pil_sample_cmyk.jpg", "shared:pillow/hopper_gray.jpg",
                 "shared:pillow/hopper.png", "shared:pillow/tiny.png", "shared:pillow/exif.png",
                 "data:images/png_rgb16_adam7.png", "data:images/png_pal4.png",
                 "data:images/jpeg_progressive.jpg", "data:images/png_exif_after_idat.png"]
    data_of = dict(sources)
    t = 0
    for src in trunc_src:
        data = data_of[src]
        L = len(data)
        cuts = sorted({c for c in (1, 2, 3, 7, 8, 16, 33, 64, L // 4, L // 2, 3 * L // 4, L - 40,
                                   L - 16, L - 12, L - 8, L - 4, L - 2, L - 1) if 0 < c < L})
        for c in cuts:
            case = file_case(f"t{t:04d}", src, data[:c], keep_r16=False)
            case["cut"] = c
            manifest["truncated"].append(case)
            t += 1

    # formula images
    for i, (w, h, ow, oh, filt) in enumerate(FORMULA):
        a = formula_image(w, h)
        r = pil_resize(a, ow, oh, filt)
        entry = {"w": w, "h": h, "ow": ow, "oh": oh, "filter": filt, "crc": crc(r)}
        if ow * oh <= 64 * 64:
            entry["out"] = f"m{i:02d}.out"
            TENSORS[entry["out"]] = r
        manifest["formula"].append(entry)

    # preprocessing: pixel_values for real images, each config
    tmp = tempfile.mkdtemp()
    pre_inputs = ["shared:pillow/hopper.jpg", "shared:pillow/tiny.png", "shared:pillow/rgb_trns.png",
                  "data:images/jpeg_orient6_progressive.jpg", "data:images/jpeg_cmyk.jpg",
                  "data:images/png_gray16.png"]
    p = 0
    for ci, (cname, text) in enumerate(CONFIGS):
        proc = processor_for(text, tmp)
        for k, src in enumerate(pre_inputs):
            im = reference_rgb(data_of[src])
            pv = pixel_values(proc, im)
            entry = {"config_name": cname, "config": text, "src": src, "shape": list(pv.shape),
                     "pv_crc": crc(pv)}
            if pv.shape[1] * pv.shape[2] <= 48 * 48 and k in (ci % len(pre_inputs), 1):
                entry["pv"] = f"p{p:03d}.pv"
                TENSORS[entry["pv"]] = pv
            manifest["preproc"].append(entry)
            p += 1
        lut = pixel_values(processor_for(json.dumps({**json.loads(text or "{}"),
                                                     "size": {"height": 16, "width": 16}}), tmp),
                           Image.fromarray(lut_image()))
        name = f"lut_{cname}"
        TENSORS[name] = lut
        manifest["lut"].append({"config_name": cname, "config": text, "pv": name})

    # the default (torchvision) processor against the Pillow one, on the corpus
    try:
        import importlib.util
        from transformers import SiglipImageProcessor
        if importlib.util.find_spec("torchvision") is None:
            raise ImportError("torchvision")
        fast, slow = SiglipImageProcessor(), SiglipImageProcessorPil()
        worst, total, count, worst_src = 0.0, 0.0, 0, None
        for src, data in sources:
            if not src.startswith("shared:"):
                continue
            try:
                im = reference_rgb(data)
            except Exception:
                continue
            a = fast(im, return_tensors="np")["pixel_values"][0]
            b = slow(im, return_tensors="np")["pixel_values"][0]
            d = np.abs(a.astype(np.float64) - b)
            if d.max() > worst:
                worst, worst_src = float(d.max()), src
            total += float(d.mean())
            count += 1
        manifest["fast_vs_slow"] = {"max_abs": worst, "mean_abs": total / max(count, 1),
                                    "images": count, "worst": worst_src}
        print(f"fast vs slow processor: max |diff| {worst:.4f} ({worst_src}), "
              f"mean {total / max(count, 1):.5f} over {count} images")
    except ImportError:
        manifest["fast_vs_slow"] = None
        print("torchvision not installed: fast processor not measured")

    with open(os.path.join(args.out, "image_goldens.json"), "w") as f:
        json.dump(manifest, f, indent=None, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    save_file({k: np.ascontiguousarray(v) for k, v in TENSORS.items()},
              os.path.join(args.out, "image_goldens.safetensors"))
    ok = sum(c["ok"] for c in manifest["files"])
    print(f"{len(manifest['files'])} files ({ok} load in Pillow), {len(manifest['truncated'])} "
          f"truncations, {len(manifest['formula'])} formula resizes, {len(manifest['preproc'])} "
          f"preprocessing cases, {len(TENSORS)} tensors")


if __name__ == "__main__":
    main()
