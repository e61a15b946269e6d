//! Image preprocessing: decoded image → float32 tensor, as the MLPerf reference does it.
//!
//! The reference (`pre_process_vgg` in the MLPerf inference repository) reads with
//! `cv2.imread`, converts BGR→RGB, resizes with `cv2.INTER_AREA` so that the shorter
//! side becomes `out * 256/224`, centre-crops `out_h × out_w`, converts to float32 and
//! normalises. This module reproduces every step **bit for bit** on the decoded pixels:
//! [`resize_area`] follows OpenCV's `INTER_AREA` code paths (the fractional area
//! tables when shrinking, the integer-block fast path for whole scale factors, and the
//! fixed-point "bilinear" emulation OpenCV uses when enlarging), including its float32
//! accumulation order and its rounding (`saturate_cast`: round half to even, except the
//! 2×2 fast path, which rounds half up). Only the decoder may differ from OpenCV's
//! (libjpeg-turbo): PNGs come out identical, JPEGs within a grey level or so.
//!
//! The resize computes only the destination window that survives the centre crop, so
//! a 500×375 photo costs one 224×224 resample, not a 341×256 one.

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::backend::Layout;

/// Which normalisation follows the resize and crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preprocess {
    /// float32, minus the RGB means `[123.68, 116.78, 103.94]`.
    Resnet50,
    /// `(x / 255 - 0.5) * 2`, i.e. `[-1, 1]`.
    Mobilenet,
}

/// RGB channel means subtracted for ResNet-50 (MLPerf reference, float32).
pub const RESNET50_MEANS: [f32; 3] = [123.68, 116.78, 103.94];

impl Preprocess {
    /// Parses `resnet50` / `mobilenet` (any case).
    pub fn parse(s: &str) -> Option<Preprocess> {
        match s.to_ascii_lowercase().as_str() {
            "resnet50" | "resnet" | "vgg" => Some(Preprocess::Resnet50),
            "mobilenet" => Some(Preprocess::Mobilenet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preprocess::Resnet50 => "resnet50",
            Preprocess::Mobilenet => "mobilenet",
        }
    }

    /// The range of values this normalisation produces from 8-bit pixels `[0, 255]`.
    pub fn value_range(self) -> (f32, f32) {
        match self {
            Preprocess::Resnet50 => (0.0 - RESNET50_MEANS[0], 255.0 - RESNET50_MEANS[2]),
            Preprocess::Mobilenet => (-1.0, 1.0),
        }
    }

    /// The normalised value of 8-bit pixel `v` in RGB channel `c`, computed in float32
    /// step by step exactly as the NumPy reference does.
    pub fn normalize(self, v: u8, c: usize) -> f32 {
        match self {
            Preprocess::Resnet50 => f32::from(v) - RESNET50_MEANS[c],
            Preprocess::Mobilenet => (f32::from(v) / 255.0 - 0.5) * 2.0,
        }
    }

    /// A 3 × 256 lookup table of [`Preprocess::normalize`].
    fn lut(self) -> [[f32; 256]; 3] {
        let mut lut = [[0.0f32; 256]; 3];
        for (c, row) in lut.iter_mut().enumerate() {
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = self.normalize(v as u8, c);
            }
        }
        lut
    }
}

/// The shape of one item, without the batch dimension: `[3, h, w]` or `[h, w, 3]`.
pub fn item_shape(layout: Layout, out_h: usize, out_w: usize) -> Vec<usize> {
    match layout {
        Layout::Nchw => vec![3, out_h, out_w],
        Layout::Nhwc => vec![out_h, out_w, 3],
    }
}

/// Size `(height, width)` of the aspect-preserving resize that precedes the crop to
/// `out_h × out_w`, as `resize_with_aspectratio` of the MLPerf reference computes it
/// (scale 87.5 %: the short side becomes `out * 256/224`, truncated; the long side
/// `int(new * long / short)`; a square counts as landscape).
pub fn resize_dims(src_h: usize, src_w: usize, out_h: usize, out_w: usize) -> (usize, usize) {
    // int(100 * out / 87.5) == floor(out * 8 / 7): 87.5 is exact in binary and the
    // quotient's fraction is a multiple of 1/7, far from the float rounding error.
    let new_h = out_h * 256 / 224;
    let new_w = out_w * 256 / 224;
    // int(a * b / c) with Python's true division equals the integer floor here for
    // the same reason (|a*b| < 2^53, fraction a multiple of 1/c).
    let (src_h, src_w) = (src_h.max(1) as u128, src_w.max(1) as u128);
    if src_h > src_w {
        let h = (new_h as u128 * src_h / src_w) as usize;
        (h, new_w)
    } else {
        let w = (new_w as u128 * src_w / src_h) as usize;
        (new_h, w)
    }
}

/// Top-left corner `(top, left)` of the centre crop of `out_h × out_w` from an image of
/// `h × w`: `int((h - out_h) / 2)` as in the reference's `center_crop`.
pub fn crop_offsets(h: usize, w: usize, out_h: usize, out_w: usize) -> (usize, usize) {
    (h.saturating_sub(out_h) / 2, w.saturating_sub(out_w) / 2)
}

/// Converts a decoded image to packed 8-bit RGB the way `cv2.imread(IMREAD_COLOR)`
/// does: greyscale is replicated to three channels, alpha is dropped (not composited),
/// 16-bit samples keep their high byte (libpng's `png_set_strip_16`). An image that is
/// already 8-bit RGB is moved, not copied.
pub fn to_rgb8(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let pack = |data: Vec<u8>| {
        // The buffer is built with exactly w*h*3 bytes just above, so this cannot fail;
        // the fallback keeps the function total without a panic path.
        RgbImage::from_raw(w, h, data).unwrap_or_else(|| RgbImage::new(w, h))
    };
    match img {
        DynamicImage::ImageRgb8(b) => b,
        DynamicImage::ImageRgba8(b) => pack(
            b.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        DynamicImage::ImageLuma8(b) => pack(b.as_raw().iter().flat_map(|&g| [g, g, g]).collect()),
        DynamicImage::ImageLumaA8(b) => pack(
            b.as_raw()
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0]])
                .collect(),
        ),
        DynamicImage::ImageRgb16(b) => pack(b.as_raw().iter().map(|&v| (v >> 8) as u8).collect()),
        DynamicImage::ImageRgba16(b) => pack(
            b.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
                .collect(),
        ),
        DynamicImage::ImageLuma16(b) => pack(
            b.as_raw()
                .iter()
                .flat_map(|&g| {
                    let g = (g >> 8) as u8;
                    [g, g, g]
                })
                .collect(),
        ),
        DynamicImage::ImageLumaA16(b) => pack(
            b.as_raw()
                .chunks_exact(2)
                .flat_map(|p| {
                    let g = (p[0] >> 8) as u8;
                    [g, g, g]
                })
                .collect(),
        ),
        other => other.to_rgb8(),
    }
}

/// Decodes an encoded image (JPEG or PNG, format from the content, not the name),
/// applies its EXIF orientation (as `cv2.imread` does) and converts it with
/// [`to_rgb8`]. An image without pixels is a decoding error, so what this returns can
/// always be given to [`Preprocessor::process`].
pub fn decode_rgb8(bytes: &[u8]) -> image::ImageResult<RgbImage> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut decoder = reader.into_decoder()?;
    // An unreadable EXIF block is not a reason to lose the picture: cv2 ignores it too.
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(image::ImageError::Decoding(
            image::error::DecodingError::new(
                image::error::ImageFormatHint::Unknown,
                "the image has no pixels",
            ),
        ));
    }
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb8(img))
}

/// Why an encoded image is cut short, if it is: a JPEG without an end-of-image marker
/// (FF D9) after its last start-of-scan (FF DA), or a PNG without its IEND chunk. The
/// decoders fill a cut JPEG with grey and say nothing, so this is checked first.
pub fn truncation(bytes: &[u8]) -> Option<&'static str> {
    let find_last = |pat: &[u8]| bytes.windows(pat.len()).rposition(|w| w == pat);
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let sos = find_last(&[0xFF, 0xDA]);
        let eoi = find_last(&[0xFF, 0xD9]);
        return match (sos, eoi) {
            (Some(s), Some(e)) if e > s => None,
            _ => Some(
                "the JPEG is truncated or damaged (no end-of-image marker after its image data)",
            ),
        };
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && find_last(b"IEND").is_none() {
        return Some("the PNG is truncated or damaged (no IEND chunk)");
    }
    None
}

/// One entry of OpenCV's `DecimateAlpha` table: destination index, source index, weight.
#[derive(Clone, Copy, Debug)]
struct Decimate {
    di: u32,
    si: u32,
    alpha: f32,
}

/// Reusable buffers of the resize; keep one per thread to avoid reallocating.
#[derive(Default, Debug)]
pub struct ResizeScratch {
    xtab: Vec<Decimate>,
    ytab: Vec<Decimate>,
    /// Per destination row of the window: range into `ytab`.
    yofs: Vec<usize>,
    /// Per destination column of the window: range into `xtab`.
    xofs: Vec<usize>,
    buf: Vec<f32>,
    sum: Vec<f32>,
    xlin: Vec<(u32, i32, i32)>,
    hrow0: Vec<i32>,
    hrow1: Vec<i32>,
}

/// A rectangle of the destination image: rows `y0..y0+h`, columns `x0..x0+w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub y0: usize,
    pub x0: usize,
    pub h: usize,
    pub w: usize,
}

/// `saturate_cast<uchar>(float)`: round half to even, clamp to [0, 255].
#[inline]
fn sat_u8(v: f32) -> u8 {
    // Clamp, then round half to even by adding and removing 2^23 (exact in the default
    // rounding mode for 0 <= v < 2^23; Rust never reassociates float arithmetic). This
    // is `round_ties_even`, without the libm call it becomes on baseline x86-64. NaN
    // stays NaN and `as` maps it to 0.
    const MAGIC: f32 = 8_388_608.0;
    ((v.clamp(0.0, 255.0) + MAGIC) - MAGIC) as u8
}

/// `saturate_cast<short>(float)`.
#[inline]
fn sat_i16(v: f32) -> i32 {
    v.round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i32
}

/// OpenCV's `computeResizeAreaTab`, for destination indices `d0..d1` (stored relative
/// to `d0`). `scale` is source/destination as OpenCV computes it (`1 / (dst / src)`).
/// `ofs[d]..ofs[d + 1]` is the range of `tab` entries for destination index `d`
/// (entries are sorted by `di`; every destination gets at least one, and the ranges
/// are kept monotone anyway).
fn range_starts(tab: &[Decimate], n: usize, ofs: &mut Vec<usize>) {
    ofs.clear();
    ofs.resize(n + 1, tab.len());
    for (k, e) in tab.iter().enumerate().rev() {
        ofs[e.di as usize] = k;
    }
    for d in (0..n).rev() {
        ofs[d] = ofs[d].min(ofs[d + 1]);
    }
}

fn area_tab(ssize: usize, d0: usize, d1: usize, scale: f64, tab: &mut Vec<Decimate>) {
    tab.clear();
    let ssize_i = ssize as i64;
    for dx in d0..d1 {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell_width = scale.min(ssize as f64 - fsx1);
        let mut sx1 = fsx1.ceil() as i64;
        let mut sx2 = fsx2.floor() as i64;
        sx2 = sx2.min(ssize_i - 1);
        sx1 = sx1.min(sx2);
        let di = (dx - d0) as u32;
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push(Decimate {
                di,
                si: (sx1 - 1).max(0) as u32,
                alpha: ((sx1 as f64 - fsx1) / cell_width) as f32,
            });
        }
        for sx in sx1..sx2 {
            tab.push(Decimate {
                di,
                si: sx.max(0) as u32,
                alpha: (1.0 / cell_width) as f32,
            });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            tab.push(Decimate {
                di,
                si: sx2.max(0) as u32,
                alpha: ((fsx2 - sx2 as f64).min(1.0).min(cell_width) / cell_width) as f32,
            });
        }
    }
}

/// Resizes packed 8-bit RGB `src` (`sh × sw`, row stride `sw * 3`) to `dh × dw` with
/// OpenCV's `INTER_AREA` semantics, writing only `win` of the result into `out`
/// (packed RGB, `win.h × win.w × 3`). Bit-exact with `cv2.resize(..., INTER_AREA)`.
///
/// # Panics
/// If `src` is shorter than `sh * sw * 3`, `out` shorter than `win.h * win.w * 3`, the
/// window leaves the destination, or a size is zero: caller bugs, not input errors
/// (every decoded image has at least one pixel).
#[allow(clippy::too_many_arguments)]
pub fn resize_area(
    src: &[u8],
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    win: Window,
    out: &mut [u8],
    scratch: &mut ResizeScratch,
) {
    assert!(
        sh > 0 && sw > 0 && dh > 0 && dw > 0,
        "resize of an empty image"
    );
    assert!(src.len() >= sh * sw * 3, "source buffer too short");
    assert!(
        win.y0 + win.h <= dh && win.x0 + win.w <= dw,
        "window outside destination"
    );
    assert!(out.len() >= win.h * win.w * 3, "output buffer too short");
    if win.h == 0 || win.w == 0 {
        return;
    }

    if sh == dh && sw == dw {
        // cv::resize copies when the size does not change.
        for y in 0..win.h {
            let s = ((win.y0 + y) * sw + win.x0) * 3;
            out[y * win.w * 3..(y + 1) * win.w * 3].copy_from_slice(&src[s..s + win.w * 3]);
        }
        return;
    }

    let inv_scale_x = dw as f64 / sw as f64;
    let inv_scale_y = dh as f64 / sh as f64;
    let scale_x = 1.0 / inv_scale_x;
    let scale_y = 1.0 / inv_scale_y;

    if scale_x >= 1.0 && scale_y >= 1.0 {
        let iscale_x = scale_x.round();
        let iscale_y = scale_y.round();
        let is_area_fast =
            (scale_x - iscale_x).abs() < f64::EPSILON && (scale_y - iscale_y).abs() < f64::EPSILON;
        if is_area_fast {
            area_fast(src, sw, iscale_x as usize, iscale_y as usize, win, out);
        } else {
            area_general(src, sh, sw, scale_x, scale_y, win, out, scratch);
        }
    } else {
        linear_area_mode(
            src,
            sh,
            sw,
            (scale_x, inv_scale_x),
            (scale_y, inv_scale_y),
            win,
            out,
            scratch,
        );
    }
}

/// OpenCV's `resizeAreaFast_` for whole scale factors: block sums; 2×2 rounds half up
/// (`(s + 2) >> 2`, the SIMD path), other block sizes multiply by `1.f / area` and round
/// half to even.
fn area_fast(src: &[u8], sw: usize, ix: usize, iy: usize, win: Window, out: &mut [u8]) {
    let area = ix * iy;
    let scale = 1.0f32 / area as f32;
    let stride = sw * 3;
    for y in 0..win.h {
        let sy0 = (win.y0 + y) * iy;
        let orow = &mut out[y * win.w * 3..(y + 1) * win.w * 3];
        for x in 0..win.w {
            let sx0 = (win.x0 + x) * ix;
            let mut acc = [0u32; 3];
            for sy in sy0..sy0 + iy {
                let row = &src[sy * stride + sx0 * 3..sy * stride + (sx0 + ix) * 3];
                for px in row.chunks_exact(3) {
                    acc[0] += u32::from(px[0]);
                    acc[1] += u32::from(px[1]);
                    acc[2] += u32::from(px[2]);
                }
            }
            for c in 0..3 {
                orow[x * 3 + c] = if ix == 2 && iy == 2 {
                    ((acc[c] + 2) >> 2) as u8
                } else {
                    sat_u8(acc[c] as f32 * scale)
                };
            }
        }
    }
}

/// OpenCV's `ResizeArea_Invoker` (fractional shrink): a horizontal pass per source row
/// with the x table, accumulated over the rows of each destination row with the y
/// weights, all in float32 in OpenCV's order.
#[allow(clippy::too_many_arguments)]
fn area_general(
    src: &[u8],
    sh: usize,
    sw: usize,
    scale_x: f64,
    scale_y: f64,
    win: Window,
    out: &mut [u8],
    s: &mut ResizeScratch,
) {
    area_tab(sw, win.x0, win.x0 + win.w, scale_x, &mut s.xtab);
    area_tab(sh, win.y0, win.y0 + win.h, scale_y, &mut s.ytab);
    range_starts(&s.ytab, win.h, &mut s.yofs);
    range_starts(&s.xtab, win.w, &mut s.xofs);
    let n = win.w * 3;
    s.buf.clear();
    s.buf.resize(n, 0.0);
    s.sum.clear();
    s.sum.resize(n, 0.0);
    let stride = sw * 3;
    // The horizontal pass of a source row does not depend on the destination row, and
    // the row straddling two destination rows is needed by both: keep the last one.
    let mut buf_row = usize::MAX;
    for dy in 0..win.h {
        let (j0, j1) = (s.yofs[dy], s.yofs[dy + 1]);
        for j in j0..j1 {
            let Decimate {
                si: sy,
                alpha: beta,
                ..
            } = s.ytab[j];
            let sy = sy as usize;
            if sy != buf_row {
                let row = &src[sy * stride..(sy + 1) * stride];
                // Per destination pixel, its entries in table order from 0: the same
                // float32 additions, in the same order, as OpenCV's `buf[dxn] += ...`.
                for (dx, px) in s.buf.chunks_exact_mut(3).enumerate() {
                    let (mut a0, mut a1, mut a2) = (0.0f32, 0.0f32, 0.0f32);
                    for e in &s.xtab[s.xofs[dx]..s.xofs[dx + 1]] {
                        let si = e.si as usize * 3;
                        let a = e.alpha;
                        a0 += f32::from(row[si]) * a;
                        a1 += f32::from(row[si + 1]) * a;
                        a2 += f32::from(row[si + 2]) * a;
                    }
                    px[0] = a0;
                    px[1] = a1;
                    px[2] = a2;
                }
                buf_row = sy;
            }
            if j == j0 {
                for (acc, &b) in s.sum.iter_mut().zip(&s.buf) {
                    *acc = beta * b;
                }
            } else {
                for (acc, &b) in s.sum.iter_mut().zip(&s.buf) {
                    *acc += beta * b;
                }
            }
        }
        for (o, &v) in out[dy * n..(dy + 1) * n].iter_mut().zip(&s.sum) {
            *o = sat_u8(v);
        }
    }
}

const COEF_SCALE: f32 = 2048.0; // INTER_RESIZE_COEF_SCALE (11 bits)

/// OpenCV's enlarging branch of `INTER_AREA`: the fixed-point linear resampler with the
/// "area" coefficients (`fx = (dx+1) - (sx+1)/scale`, fractional part).
#[allow(clippy::too_many_arguments)]
fn linear_area_mode(
    src: &[u8],
    sh: usize,
    sw: usize,
    (scale_x, inv_scale_x): (f64, f64),
    (scale_y, inv_scale_y): (f64, f64),
    win: Window,
    out: &mut [u8],
    s: &mut ResizeScratch,
) {
    let coef = |d: usize, scale: f64, inv: f64| -> (i64, f32) {
        let sx = (d as f64 * scale).floor() as i64;
        let fx = ((d + 1) as f64 - (sx + 1) as f64 * inv) as f32;
        let fx = if fx <= 0.0 { 0.0 } else { fx - fx.floor() };
        (sx, fx)
    };
    s.xlin.clear();
    for dx in win.x0..win.x0 + win.w {
        let (mut sx, mut fx) = coef(dx, scale_x, inv_scale_x);
        if sx >= sw as i64 - 1 {
            fx = 0.0;
            sx = sw as i64 - 1;
        }
        let a0 = sat_i16((1.0 - fx) * COEF_SCALE);
        let a1 = sat_i16(fx * COEF_SCALE);
        s.xlin.push((sx.max(0) as u32, a0, a1));
    }
    let n = win.w * 3;
    s.hrow0.clear();
    s.hrow0.resize(n, 0);
    s.hrow1.clear();
    s.hrow1.resize(n, 0);
    let stride = sw * 3;
    let hpass = |row: &[u8], xlin: &[(u32, i32, i32)], dst: &mut [i32]| {
        for (x, &(sx, a0, a1)) in xlin.iter().enumerate() {
            let si = sx as usize * 3;
            for c in 0..3 {
                dst[x * 3 + c] = if sx as usize + 1 >= sw {
                    // Right border (OpenCV's `xmax`): the pixel alone, times ONE.
                    i32::from(row[si + c]) * COEF_SCALE as i32
                } else {
                    i32::from(row[si + c]) * a0 + i32::from(row[si + 3 + c]) * a1
                };
            }
        }
    };
    let clamp_row = |r: i64| r.clamp(0, sh as i64 - 1) as usize;
    // Source rows whose horizontal pass is in hrow0 / hrow1 (consecutive destination
    // rows mostly share them when enlarging).
    let (mut have0, mut have1) = (usize::MAX, usize::MAX);
    for dy in 0..win.h {
        let (sy, fy) = coef(win.y0 + dy, scale_y, inv_scale_y);
        let b0 = sat_i16((1.0 - fy) * COEF_SCALE);
        let b1 = sat_i16(fy * COEF_SCALE);
        let (r0, r1) = (clamp_row(sy), clamp_row(sy + 1));
        if r0 != have0 {
            if r0 == have1 {
                std::mem::swap(&mut s.hrow0, &mut s.hrow1);
                have0 = have1;
                have1 = usize::MAX;
            } else {
                hpass(&src[r0 * stride..(r0 + 1) * stride], &s.xlin, &mut s.hrow0);
                have0 = r0;
            }
        }
        if r1 != have1 {
            hpass(&src[r1 * stride..(r1 + 1) * stride], &s.xlin, &mut s.hrow1);
            have1 = r1;
        }
        for (o, (&h0, &h1)) in out[dy * n..(dy + 1) * n]
            .iter_mut()
            .zip(s.hrow0.iter().zip(&s.hrow1))
        {
            let v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2;
            *o = v.clamp(0, 255) as u8;
        }
    }
}

/// Turns decoded images into normalised tensors of one shape; holds the buffers that
/// are reused from image to image (keep one per thread).
#[derive(Debug)]
pub struct Preprocessor {
    kind: Preprocess,
    layout: Layout,
    out_h: usize,
    out_w: usize,
    lut: Box<[[f32; 256]; 3]>,
    crop: Vec<u8>,
    scratch: ResizeScratch,
}

impl Preprocessor {
    /// A preprocessor producing `out_h × out_w × 3` items in `layout`.
    pub fn new(kind: Preprocess, layout: Layout, out_h: usize, out_w: usize) -> Preprocessor {
        Preprocessor {
            kind,
            layout,
            out_h,
            out_w,
            lut: Box::new(kind.lut()),
            crop: Vec::new(),
            scratch: ResizeScratch::default(),
        }
    }

    pub fn kind(&self) -> Preprocess {
        self.kind
    }

    /// Elements in one output item (`3 * out_h * out_w`).
    pub fn item_len(&self) -> usize {
        3 * self.out_h * self.out_w
    }

    /// The centre crop, as packed 8-bit RGB (`out_h × out_w × 3`), of the resized image.
    /// This is what the reference has just before `np.asarray(img, dtype='float32')`.
    pub fn crop_rgb8(&mut self, img: &RgbImage) -> &[u8] {
        let (sw, sh) = (img.width() as usize, img.height() as usize);
        let (rh, rw) = resize_dims(sh, sw, self.out_h, self.out_w);
        let (top, left) = crop_offsets(rh, rw, self.out_h, self.out_w);
        // resize_dims never returns a side below the output's (it is at least
        // out * 256/224), so the window always lies inside the resized image.
        let win = Window {
            y0: top,
            x0: left,
            h: self.out_h,
            w: self.out_w,
        };
        self.crop.clear();
        self.crop.resize(self.out_h * self.out_w * 3, 0);
        resize_area(
            img.as_raw(),
            sh,
            sw,
            rh,
            rw,
            win,
            &mut self.crop,
            &mut self.scratch,
        );
        &self.crop
    }

    /// Resizes, crops and normalises `img` into `out` (`item_len()` elements) in this
    /// preprocessor's layout.
    ///
    /// # Panics
    /// If `out.len() != self.item_len()` (a caller bug) or the image has no pixel
    /// (decoders never produce one).
    pub fn process(&mut self, img: &RgbImage, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.item_len(),
            "output slice of the wrong length"
        );
        self.crop_rgb8(img);
        let (h, w) = (self.out_h, self.out_w);
        let lut = &*self.lut;
        match self.layout {
            Layout::Nhwc => {
                for (o, px) in out.chunks_exact_mut(3).zip(self.crop.chunks_exact(3)) {
                    o[0] = lut[0][px[0] as usize];
                    o[1] = lut[1][px[1] as usize];
                    o[2] = lut[2][px[2] as usize];
                }
            }
            Layout::Nchw => {
                let plane = h * w;
                let (r, rest) = out.split_at_mut(plane);
                let (g, b) = rest.split_at_mut(plane);
                for (i, px) in self.crop.chunks_exact(3).enumerate() {
                    r[i] = lut[0][px[0] as usize];
                    g[i] = lut[1][px[1] as usize];
                    b[i] = lut[2][px[2] as usize];
                }
            }
        }
    }

    /// Decodes `bytes` ([`decode_rgb8`]) and processes the image into `out`.
    pub fn process_encoded(&mut self, bytes: &[u8], out: &mut [f32]) -> image::ImageResult<()> {
        let img = decode_rgb8(bytes)?;
        self.process(&img, out);
        Ok(())
    }
}

/// One-shot convenience: the tensor of `img` for `kind`, `out_h × out_w`, `layout`.
pub fn preprocess(
    img: &RgbImage,
    kind: Preprocess,
    out_h: usize,
    out_w: usize,
    layout: Layout,
) -> Vec<f32> {
    let mut p = Preprocessor::new(kind, layout, out_h, out_w);
    let mut out = vec![0.0; p.item_len()];
    p.process(img, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cut_image_is_found_truncated() {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 7]));
        let mut jpeg = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        assert_eq!(truncation(&jpeg), None);
        assert!(truncation(&jpeg[..jpeg.len() / 2])
            .unwrap()
            .contains("JPEG is truncated"));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(truncation(&png), None);
        assert!(truncation(&png[..png.len() - 12]).is_some());
    }

    use super::*;

    fn rgb(h: usize, w: usize, f: impl Fn(usize, usize, usize) -> u8) -> RgbImage {
        let mut data = Vec::with_capacity(h * w * 3);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    data.push(f(y, x, c));
                }
            }
        }
        RgbImage::from_raw(w as u32, h as u32, data).unwrap()
    }

    fn full(h: usize, w: usize) -> Window {
        Window { y0: 0, x0: 0, h, w }
    }

    fn resize(src: &RgbImage, dh: usize, dw: usize) -> Vec<u8> {
        let mut out = vec![0; dh * dw * 3];
        resize_area(
            src.as_raw(),
            src.height() as usize,
            src.width() as usize,
            dh,
            dw,
            full(dh, dw),
            &mut out,
            &mut ResizeScratch::default(),
        );
        out
    }

    fn channel(v: &[u8], c: usize) -> Vec<u8> {
        v.chunks_exact(3).map(|p| p[c]).collect()
    }

    #[test]
    fn area_4x4_to_2x2_is_block_means() {
        // Block sums 8 (mean 2), 40 (10), 4*100 (100), 4*255; all exact.
        let vals = [
            [1, 3, 10, 10],
            [2, 2, 10, 10],
            [100, 100, 255, 255],
            [100, 100, 255, 255],
        ];
        let img = rgb(4, 4, |y, x, _| vals[y][x]);
        let out = resize(&img, 2, 2);
        assert_eq!(channel(&out, 0), vec![2, 10, 100, 255]);
        assert_eq!(channel(&out, 1), channel(&out, 0));
    }

    #[test]
    fn area_2x2_rounds_half_up_like_opencv() {
        // cv2.resize(np.dstack([a]*3), (2,2), interpolation=cv2.INTER_AREA)[..., 0]
        // with a = [[0,1,0,0],[1,0,0,0],[0,0,3,4],[0,0,4,4]] gives [[1,0],[0,4]]:
        // the block mean 0.5 rounds up (the (s+2)>>2 SIMD path), 3.75 to 4.
        let a = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 3, 4], [0, 0, 4, 4]];
        let img = rgb(4, 4, |y, x, _| a[y][x]);
        assert_eq!(channel(&resize(&img, 2, 2), 0), vec![1, 0, 0, 4]);
    }

    #[test]
    fn area_3x3_blocks_round_half_even() {
        // Whole factor 3: sum * (1.f/9) rounded half to even. Block of 6x1 + 3x2 = 12
        // → 1.333 → 1; block of nine 7s → 7 (63 * 0.11111111f = 7.0000005 → 7).
        let img = rgb(3, 6, |y, x, _| if x < 3 { 1 + (y == 0) as u8 } else { 7 });
        assert_eq!(channel(&resize(&img, 1, 2), 0), vec![1, 7]);
    }

    /// 5×5 → 3×3 with the fractional tables (scale 5/3), checked against OpenCV:
    /// ```python
    /// import numpy as np, cv2  # opencv-python-headless 5.0.0
    /// a = (np.arange(25).reshape(5, 5) * 37 % 256).astype(np.uint8)
    /// img = np.dstack([a, 255 - a, a // 2])
    /// print(cv2.resize(img, (3, 3), interpolation=cv2.INTER_AREA).tolist())
    /// ```
    #[test]
    fn area_5x5_to_3x3_matches_cv2() {
        let img = rgb(5, 5, |y, x, c| {
            let a = ((y * 5 + x) * 37 % 256) as u8;
            [a, 255 - a, a / 2][c]
        });
        let out = resize(&img, 3, 3);
        let expected: [[u8; 3]; 9] = CV2_5X5_TO_3X3;
        let got: Vec<[u8; 3]> = out.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        assert_eq!(got, expected.to_vec());
    }

    // Produced by the snippet above (row-major, RGB per pixel).
    const CV2_5X5_TO_3X3: [[u8; 3]; 9] = [
        [89, 166, 44],
        [66, 189, 33],
        [105, 150, 52],
        [129, 126, 64],
        [147, 108, 73],
        [104, 151, 52],
        [107, 148, 53],
        [74, 181, 37],
        [134, 121, 67],
    ];

    /// 3×4 → 7×9 (enlarging: OpenCV's fixed-point linear with area coefficients):
    /// ```python
    /// a = (np.arange(12).reshape(3, 4) * 23 % 256).astype(np.uint8)
    /// img = np.dstack([a, 255 - a, a // 2])
    /// out = cv2.resize(img, (9, 7), interpolation=cv2.INTER_AREA)
    /// print(out[..., 0].tolist())
    /// ```
    #[test]
    fn area_enlarge_matches_cv2() {
        let img = rgb(3, 4, |y, x, c| {
            let a = ((y * 4 + x) * 23 % 256) as u8;
            [a, 255 - a, a / 2][c]
        });
        let out = resize(&img, 7, 9);
        let got: Vec<Vec<u8>> = channel(&out, 0).chunks(9).map(|r| r.to_vec()).collect();
        let expected: Vec<Vec<u8>> = CV2_ENLARGE.iter().map(|r| r.to_vec()).collect();
        assert_eq!(got, expected);
    }

    // Produced by the snippet above.
    const CV2_ENLARGE: [[u8; 9]; 7] = [
        [0, 0, 17, 23, 35, 46, 52, 69, 69],
        [0, 0, 17, 23, 35, 46, 52, 69, 69],
        [61, 61, 79, 84, 96, 107, 113, 130, 130],
        [92, 92, 109, 115, 127, 138, 144, 161, 161],
        [123, 123, 140, 146, 157, 168, 174, 192, 192],
        [184, 184, 201, 207, 219, 230, 236, 253, 253],
        [184, 184, 201, 207, 219, 230, 236, 253, 253],
    ];

    #[test]
    fn same_size_is_a_copy_and_windows_agree_with_full() {
        let img = rgb(7, 5, |y, x, c| (y * 31 + x * 7 + c * 50) as u8);
        assert_eq!(resize(&img, 7, 5), img.as_raw().clone());
        // A window of a shrink, a fractional shrink and an enlargement equals the
        // same region of the full result.
        let big = rgb(37, 53, |y, x, c| ((y * y + 3 * x + c * 80) % 256) as u8);
        for (dh, dw) in [(20, 26), (15, 22), (60, 81), (37, 20)] {
            let fullr = resize(&big, dh, dw);
            let win = Window {
                y0: 3,
                x0: 5,
                h: dh - 7,
                w: dw - 9,
            };
            let mut part = vec![0; win.h * win.w * 3];
            resize_area(
                big.as_raw(),
                37,
                53,
                dh,
                dw,
                win,
                &mut part,
                &mut ResizeScratch::default(),
            );
            for y in 0..win.h {
                let s = ((y + 3) * dw + 5) * 3;
                assert_eq!(
                    &part[y * win.w * 3..(y + 1) * win.w * 3],
                    &fullr[s..s + win.w * 3],
                    "{dh}x{dw} row {y}"
                );
            }
        }
    }

    #[test]
    fn resize_dims_and_crop_follow_the_reference() {
        // Landscape 500x375 (w x h): h = 256, w = int(256 * 500 / 375) = 341.
        assert_eq!(resize_dims(375, 500, 224, 224), (256, 341));
        // Portrait: w = 256, h = int(256 * 640 / 427) = 383.
        assert_eq!(resize_dims(640, 427, 224, 224), (383, 256));
        // Square counts as landscape; small images are enlarged.
        assert_eq!(resize_dims(100, 100, 224, 224), (256, 256));
        // Other sizes: short side int(out * 256 / 224).
        assert_eq!(resize_dims(300, 300, 299, 299), (341, 341));
        assert_eq!(crop_offsets(256, 341, 224, 224), (16, 58));
        assert_eq!(crop_offsets(383, 256, 224, 224), (79, 16));
        assert_eq!(crop_offsets(224, 224, 224, 224), (0, 0));
    }

    #[test]
    fn normalisation_and_layouts() {
        // An image already 8x8 → resize to (8*256/224=9)... use out 7: 7*256/224 = 8,
        // so an 8x8 source is neither resized nor (after the crop offset 0) shifted.
        let img = rgb(8, 8, |y, x, c| (y * 8 + x) as u8 * 3 + c as u8);
        let nhwc = preprocess(&img, Preprocess::Resnet50, 7, 7, Layout::Nhwc);
        let nchw = preprocess(&img, Preprocess::Resnet50, 7, 7, Layout::Nchw);
        // crop offset int((8 - 7) / 2) = 0.
        for y in 0..7 {
            for x in 0..7 {
                for c in 0..3 {
                    let v = ((y * 8 + x) * 3 + c) as f32;
                    let want = v - RESNET50_MEANS[c];
                    assert_eq!(nhwc[(y * 7 + x) * 3 + c], want);
                    assert_eq!(nchw[c * 49 + y * 7 + x], want);
                }
            }
        }
        let mob = preprocess(&img, Preprocess::Mobilenet, 7, 7, Layout::Nhwc);
        assert_eq!(mob[0], -1.0);
        let v = 3.0f32 * 9.0 + 2.0; // pixel (1,1), channel 2
        assert_eq!(mob[(7 + 1) * 3 + 2], (v / 255.0 - 0.5) * 2.0);
        assert_eq!(Preprocess::Mobilenet.normalize(255, 0), 1.0);
        assert_eq!(Preprocess::Resnet50.normalize(0, 2), -103.94);
    }

    #[test]
    fn crop_takes_the_centre() {
        // out 7 → short side 8; a 8x10 image: w = int(8 * 10 / 8) = 10, no resize;
        // crop top = 0, left = int((10 - 7) / 2) = 1.
        let img = rgb(8, 10, |y, x, _| (y * 10 + x) as u8);
        let mut p = Preprocessor::new(Preprocess::Resnet50, Layout::Nhwc, 7, 7);
        let crop = p.crop_rgb8(&img).to_vec();
        assert_eq!(crop[0], 1);
        assert_eq!(crop[3 * 6], 7);
        assert_eq!(crop[3 * 7], 11);
    }

    #[test]
    fn to_rgb8_matches_imread() {
        let grey = image::GrayImage::from_raw(2, 1, vec![10, 200]).unwrap();
        let out = to_rgb8(DynamicImage::ImageLuma8(grey));
        assert_eq!(out.as_raw(), &vec![10, 10, 10, 200, 200, 200]);
        let rgba = image::RgbaImage::from_raw(1, 1, vec![1, 2, 3, 0]).unwrap();
        assert_eq!(
            to_rgb8(DynamicImage::ImageRgba8(rgba)).as_raw(),
            &vec![1, 2, 3]
        );
        // 16-bit keeps the high byte (0x12ff → 0x12), not round(v / 257) (= 0x13).
        let rgb16: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
            image::ImageBuffer::from_raw(1, 1, vec![0x12ff, 0xffff, 0x00ff]).unwrap();
        assert_eq!(
            to_rgb8(DynamicImage::ImageRgb16(rgb16)).as_raw(),
            &vec![0x12, 0xff, 0x00]
        );
    }

    #[test]
    fn decodes_png_bytes() {
        let img = rgb(9, 11, |y, x, c| (y * 20 + x * 3 + c) as u8);
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(img.clone())
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        assert_eq!(decode_rgb8(&bytes).unwrap(), img);
        assert!(decode_rgb8(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode_rgb8(b"not an image").is_err());
    }
}
