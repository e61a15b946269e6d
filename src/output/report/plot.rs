//! A small SVG plotter for the report: axes with ticks, points, lines, bands. Written
//! here rather than with a plotting crate so that the page's structure is ours to
//! test: every plotted step is one `<circle class="pt">` inside its plot's
//! `<figure data-plot="ID">`, which the browser test counts.

use std::fmt::Write as _;

use super::html::esc;

/// How values map to positions along an axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear,
    /// Base-10 logarithm; only positive values are drawn.
    Log,
    /// A percentile in [0, 100) at log10(1 / (1 − p/100)): 90 %, 99 %, 99.9 % … equally
    /// spaced, as HdrHistogram's plots draw the tail.
    Nines,
}

impl Scale {
    /// The axis position of a value (None: cannot be drawn on this scale).
    fn pos(self, v: f64) -> Option<f64> {
        let p = match self {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Log => return None,
            Scale::Nines if (0.0..100.0).contains(&v) => -(1.0 - v / 100.0).log10(),
            Scale::Nines => return None,
        };
        p.is_finite().then_some(p)
    }
}

/// How a point is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    /// Filled: a step that passed.
    Pass,
    /// Hollow: a step that failed (or was spoiled).
    Fail,
    /// Filled, for points without a verdict.
    Plain,
}

/// One plotted point with its tooltip.
#[derive(Clone, Debug)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub mark: Mark,
    pub tip: String,
}

/// A named set of points in one colour, drawn as marks, a line, or both.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub color: usize,
    pub points: Vec<Point>,
    /// Joins the points in order.
    pub line: bool,
    pub dashed: bool,
    /// Draws each point as a circle (`class="pt"`).
    pub marks: bool,
    /// Drawn lighter: the secondary line of a source that has a main one.
    pub faint: bool,
}

/// A horizontal or vertical rule, e.g. the target or the answer.
#[derive(Clone, Debug)]
pub struct Rule {
    pub at: f64,
    pub label: String,
    pub color: usize,
}

/// A shaded range of x, e.g. a confidence interval; an open end reaches the plot's edge.
#[derive(Clone, Debug)]
pub struct Band {
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub label: String,
    pub color: usize,
}

/// One plot: a title, two axes and what is drawn on them.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The `data-plot` id the browser test finds it by.
    pub id: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
    pub hrules: Vec<Rule>,
    pub vrules: Vec<Rule>,
    pub bands: Vec<Band>,
    /// Draws y = x (achieved against offered, predicted against measured).
    pub diagonal: bool,
    /// Starts a linear axis at zero.
    pub from_zero: bool,
    /// The lowest y shown: smaller values are drawn at the axis (a spectrum's first
    /// percentiles can be nanoseconds, which would stretch a log axis over decades).
    pub y_floor: Option<f64>,
}

/// Colours for series and rules, told apart in grey print too.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f",
];

/// The colour of palette index `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 46.0;

/// An axis's range in positions (scale applied) and its ticks.
struct Span {
    scale: Scale,
    lo: f64,
    hi: f64,
}

impl Span {
    /// The range covering `values` (drawable ones), padded a little; a linear axis
    /// from zero when asked. Falls back to [0, 1] with nothing drawable.
    fn covering(scale: Scale, values: &[f64], from_zero: bool) -> Span {
        let ps: Vec<f64> = values.iter().filter_map(|&v| scale.pos(v)).collect();
        let (mut lo, mut hi) = ps
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &p| {
                (a.min(p), b.max(p))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if scale == Scale::Linear && from_zero {
            lo = lo.min(0.0);
        }
        if scale == Scale::Nines {
            lo = 0.0;
            hi = hi.max(2.0).ceil();
        }
        if hi - lo < 1e-12 {
            let d = if lo.abs() > 1e-12 {
                lo.abs() * 0.1
            } else {
                1.0
            };
            lo -= d;
            hi += d;
        }
        if scale != Scale::Nines {
            let pad = (hi - lo) * 0.05;
            hi += pad;
            if !(scale == Scale::Linear && from_zero && lo == 0.0) {
                lo -= pad;
            }
        }
        Span { scale, lo, hi }
    }

    /// The fraction along the axis of a value, clamped to the plot (with whether it
    /// was clamped). None where the scale cannot place it.
    fn frac(&self, v: f64) -> Option<(f64, bool)> {
        let f = (self.scale.pos(v)? - self.lo) / (self.hi - self.lo);
        Some((f.clamp(0.0, 1.0), !(0.0..=1.0).contains(&f)))
    }

    /// Tick positions (in values) with their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self.scale {
            Scale::Linear => {
                let step = nice_step((self.hi - self.lo) / 6.0);
                let mut v = (self.lo / step).ceil() * step;
                let mut out = Vec::new();
                while v <= self.hi + step * 1e-9 && out.len() < 20 {
                    out.push((v, number(v, step)));
                    v += step;
                }
                out
            }
            Scale::Log => {
                let mut out = Vec::new();
                let mut e = self.lo.floor() as i32;
                while (e as f64) <= self.hi && out.len() < 30 {
                    for m in [1.0, 2.0, 5.0] {
                        let p = e as f64 + f64::log10(m);
                        if p >= self.lo && p <= self.hi {
                            let v = 10f64.powf(p);
                            out.push((v, number(v, v)));
                        }
                    }
                    e += 1;
                }
                if out.len() < 3 {
                    // Less than a decade: plain steps between the ends' values.
                    let (a, b) = (10f64.powf(self.lo), 10f64.powf(self.hi));
                    let step = nice_step((b - a) / 8.0);
                    let mut v = (a / step).ceil() * step;
                    out.clear();
                    while v <= b && out.len() < 20 {
                        out.push((v, number(v, step)));
                        v += step;
                    }
                }
                out
            }
            Scale::Nines => (0..=self.hi as i32)
                .map(|k| {
                    let p = 100.0 * (1.0 - 10f64.powi(-k));
                    let decimals = (k as usize).saturating_sub(2);
                    (p, format!("{p:.decimals$}%"))
                })
                .collect(),
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let e = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * e)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * e)
}

/// A tick label: as many decimals as the step needs, none for whole numbers.
pub fn number(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl Plot {
    pub fn new(id: &str, title: &str, x_label: &str, y_label: &str) -> Plot {
        Plot {
            id: id.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            hrules: Vec::new(),
            vrules: Vec::new(),
            bands: Vec::new(),
            diagonal: false,
            from_zero: false,
            y_floor: None,
        }
    }

    /// The plot as one `<figure>` holding its SVG.
    pub fn svg(&self) -> String {
        let all = |f: fn(&Point) -> f64| -> Vec<f64> {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(f))
                .collect()
        };
        let mut xs = all(|p| p.x);
        let mut ys = all(|p| p.y);
        xs.extend(self.vrules.iter().map(|r| r.at));
        xs.extend(
            self.bands
                .iter()
                .flat_map(|b| b.from.into_iter().chain(b.to)),
        );
        ys.extend(self.hrules.iter().map(|r| r.at));
        if self.diagonal {
            let both: Vec<f64> = xs.iter().chain(ys.iter()).copied().collect();
            xs = both.clone();
            ys = both;
        }
        if let Some(floor) = self.y_floor {
            ys.retain(|&y| y >= floor);
            ys.push(floor);
        }
        let sx = Span::covering(self.x_scale, &xs, self.from_zero);
        let sy = Span::covering(self.y_scale, &ys, self.from_zero);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let px = |f: f64| LEFT + f * pw;
        let py = |f: f64| TOP + (1.0 - f) * ph;
        let mut s = String::new();
        let points: usize = (self.series.iter())
            .filter(|s| s.marks)
            .map(|s| s.points.len())
            .sum();
        let _ = write!(
            s,
            r#"<figure class="plot" data-plot="{}" data-points="{points}"><svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
            esc(&self.id),
            esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="20" class="title">{}</text>"#,
            LEFT,
            esc(&self.title)
        );
        // Bands under everything.
        for b in &self.bands {
            let f0 = b.from.and_then(|v| sx.frac(v)).map_or(0.0, |f| f.0);
            let f1 = b.to.and_then(|v| sx.frac(v)).map_or(1.0, |f| f.0);
            let _ = write!(
                s,
                r#"<rect class="band" x="{:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="{}" fill-opacity="0.15"><title>{}</title></rect>"#,
                px(f0),
                (px(f1) - px(f0)).max(1.0),
                color(b.color),
                esc(&b.label)
            );
        }
        // Grid and ticks.
        for (v, label) in sx.ticks() {
            if let Some((f, false)) = sx.frac(v) {
                let x = px(f);
                let _ = write!(
                    s,
                    r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    TOP + ph,
                    TOP + ph + 16.0,
                    esc(&label)
                );
            }
        }
        for (v, label) in sy.ticks() {
            if let Some((f, false)) = sy.frac(v) {
                let y = py(f);
                let _ = write!(
                    s,
                    r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    LEFT + pw,
                    LEFT - 6.0,
                    y + 4.0,
                    esc(&label)
                );
            }
        }
        let _ = write!(
            s,
            r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none"/><text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 8.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        if self.diagonal {
            let lo = sx.lo.max(sy.lo);
            let hi = sx.hi.min(sy.hi);
            if hi > lo {
                let to_f = |span: &Span, p: f64| (p - span.lo) / (span.hi - span.lo);
                let _ = write!(
                    s,
                    r#"<line class="diagonal" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"><title>y = x</title></line>"#,
                    px(to_f(&sx, lo)),
                    py(to_f(&sy, lo)),
                    px(to_f(&sx, hi)),
                    py(to_f(&sy, hi))
                );
            }
        }
        for r in &self.hrules {
            if let Some((f, _)) = sy.frac(r.at) {
                let y = py(f);
                let _ = write!(
                    s,
                    r#"<line class="rule" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}"/><text class="rule-label" x="{:.1}" y="{:.1}" fill="{c}">{}</text>"#,
                    LEFT + pw,
                    LEFT + 4.0,
                    y - 4.0,
                    esc(&r.label),
                    c = color(r.color)
                );
            }
        }
        for (k, r) in self.vrules.iter().enumerate() {
            if let Some((f, _)) = sx.frac(r.at) {
                let x = px(f);
                // Right of the rule, or left of it in the plot's right half.
                let (tx, anchor) = if f > 0.55 {
                    (x - 3.0, "end")
                } else {
                    (x + 3.0, "start")
                };
                let _ = write!(
                    s,
                    r#"<line class="rule" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{c}"/><text class="rule-label" x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="{c}">{}</text>"#,
                    TOP + ph,
                    // Several answers (overlaid runs) label one under the other.
                    TOP + ph - 6.0 - 13.0 * k as f64,
                    esc(&r.label),
                    c = color(r.color)
                );
            }
        }
        for (i, ser) in self.series.iter().enumerate() {
            let c = color(ser.color);
            let placed: Vec<(f64, f64, bool, &Point)> = (ser.points.iter())
                .filter_map(|p| {
                    let (fx, cx) = sx.frac(p.x)?;
                    let (fy, cy) = sy.frac(p.y)?;
                    Some((px(fx), py(fy), cx || cy, p))
                })
                .collect();
            if ser.line && placed.len() > 1 {
                let pts: Vec<String> = (placed.iter())
                    .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
                    .collect();
                let dash = if ser.dashed {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                };
                let faint = if ser.faint {
                    r#" stroke-opacity="0.45""#
                } else {
                    ""
                };
                let _ = write!(
                    s,
                    r#"<polyline class="ln" data-series="{i}" points="{}" stroke="{c}"{dash}{faint}><title>{}</title></polyline>"#,
                    pts.join(" "),
                    esc(&ser.name)
                );
            }
            if ser.marks {
                // Every point is drawn, even one the scale cannot place (at the
                // axis's start, marked clamped), so that the count is one per step.
                for p in &ser.points {
                    let (x, y, clamped) = match placed.iter().find(|q| std::ptr::eq(q.3, p)) {
                        Some(&(x, y, c, _)) => (x, y, c),
                        None => (
                            sx.frac(p.x).map_or(px(0.0), |f| px(f.0)),
                            sy.frac(p.y).map_or(py(0.0), |f| py(f.0)),
                            true,
                        ),
                    };
                    let (class, fill) = match p.mark {
                        Mark::Fail => ("pt fail", "#fff"),
                        Mark::Pass => ("pt pass", c),
                        Mark::Plain => ("pt", c),
                    };
                    let clamped = if clamped { " clamped" } else { "" };
                    let _ = write!(
                        s,
                        r#"<circle class="{class}{clamped}" data-series="{i}" cx="{x:.1}" cy="{y:.1}" r="4" fill="{fill}" stroke="{c}"><title>{}</title></circle>"#,
                        esc(&p.tip)
                    );
                }
            }
        }
        // The legend, top right, one line per named series.
        let named: Vec<&Series> = self.series.iter().filter(|s| !s.name.is_empty()).collect();
        for (k, ser) in named.iter().enumerate() {
            let y = TOP + 14.0 + 14.0 * k as f64;
            let x = LEFT + pw - 8.0;
            let mut dash = if ser.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            }
            .to_string();
            if ser.faint {
                dash.push_str(r#" stroke-opacity="0.45""#);
            }
            let _ = write!(
                s,
                r#"<line class="key" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}"{dash}/><text class="legend" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x - 18.0,
                y - 4.0,
                x,
                y - 4.0,
                color(ser.color),
                x - 22.0,
                y,
                esc(&ser.name)
            );
        }
        s.push_str("</svg></figure>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f64, y: f64, mark: Mark) -> Point {
        Point {
            x,
            y,
            mark,
            tip: format!("{x},{y}"),
        }
    }

    #[test]
    fn scales_place_values() {
        let cases: &[(Scale, f64, Option<f64>)] = &[
            (Scale::Linear, 3.0, Some(3.0)),
            (Scale::Log, 100.0, Some(2.0)),
            (Scale::Log, 0.0, None),
            (Scale::Nines, 0.0, Some(0.0)),
            (Scale::Nines, 99.0, Some(2.0)),
            (Scale::Nines, 99.9, Some(3.0)),
            (Scale::Nines, 100.0, None),
        ];
        for &(scale, v, want) in cases {
            let got = scale.pos(v);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{scale:?} {v}: {g}"),
                (g, w) => assert_eq!(g, w, "{scale:?} {v}"),
            }
        }
    }

    #[test]
    fn nice_steps_and_labels() {
        for (raw, want) in [
            (0.7, 1.0),
            (1.3, 2.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (0.013, 0.02),
        ] {
            assert!((nice_step(raw) - want).abs() < 1e-12, "{raw}");
        }
        assert_eq!(number(20.0, 5.0), "20");
        assert_eq!(number(0.25, 0.05), "0.25");
        assert_eq!(number(0.5, 0.1), "0.5");
    }

    #[test]
    fn every_marked_point_is_one_circle_even_off_scale() {
        let mut p = Plot::new("t", "T <1>", "x", "y");
        p.y_scale = Scale::Log;
        p.series.push(Series {
            name: "a".into(),
            points: vec![
                pt(1.0, 0.01, Mark::Pass),
                pt(2.0, 0.0, Mark::Fail),
                pt(3.0, 0.2, Mark::Fail),
            ],
            marks: true,
            line: true,
            ..Series::default()
        });
        p.series.push(Series {
            name: "line only".into(),
            points: vec![pt(1.0, 0.1, Mark::Plain), pt(2.0, 0.2, Mark::Plain)],
            line: true,
            ..Series::default()
        });
        let svg = p.svg();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"pt fail").count(), 2);
        assert_eq!(svg.matches("clamped").count(), 1, "the zero on a log axis");
        assert!(svg.contains("data-points=\"3\""));
        assert!(svg.contains("T &lt;1&gt;"), "titles are escaped");
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn nines_ticks_label_the_tail() {
        let span = Span::covering(Scale::Nines, &[50.0, 99.99], false);
        let labels: Vec<String> = span.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }
}
