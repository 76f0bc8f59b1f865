//! Server-rendered charts for the dashboards: the geometry of each chart is computed here, in
//! plain Rust, and drawn as inline SVG by the askama template `app/reports.html` (so every
//! label and title is escaped by askama, and the page needs no chart JavaScript, prints, and
//! can be read by tests as text). Each chart carries a title, a description and a data table
//! (the "Show data" disclosure under it) for screen readers and printouts.
//!
//! Chosen over charts-rs: four chart shapes are a few hundred lines, and owning them keeps the
//! SVG accessible (role, `<title>`/`<desc>`, one `<g class="bucket">` per bucket with its data
//! attributes) and styled by the workspace stylesheet (CSP allows no inline style).

use chrono::NaiveDate;

/// Width of the view box of a full-width chart (the trend) and of a half-width one (the
/// others); the SVG scales to its container, and the stylesheet sets the text size per
/// screen width so labels stay readable.
pub const WIDE: f64 = 800.0;
pub const HALF: f64 = 600.0;
/// Left edge of the plot (room for the axis labels) and right padding.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
/// About the width of one character of chart text, in view-box units (for what fits).
const CHAR_W: f64 = 6.6;
/// How much larger chart text is set on phones (20 units instead of 12).
const NARROW_SCALE: f64 = 20.0 / 12.0;

fn c(v: f64) -> String {
    format!("{v:.1}")
}

/// A number as a person reads it: at most two decimals, no trailing zeros (`42.5`, `40`).
pub fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Seconds as "45 s", "12 min", "3.5 h", "2.1 d".
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{} s", secs.round())
    } else if secs < 3600.0 {
        format!("{} min", (secs / 60.0).round())
    } else if secs < 48.0 * 3600.0 {
        format!("{} h", num((secs / 360.0).round() / 10.0))
    } else {
        format!("{} d", num((secs / 8640.0).round() / 10.0))
    }
}

/// A bucket's start as an axis label.
pub fn bucket_label(start: NaiveDate, interval: &str) -> String {
    match interval {
        "month" => start.format("%b %Y").to_string(),
        _ => start.format("%b %-d").to_string(),
    }
}

/// A data table: column heads and rows of cells.
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A horizontal grid line with its label.
pub struct Tick {
    pub y: String,
    pub label: String,
}

/// A label under the x axis.
pub struct XLabel {
    pub x: String,
    pub label: String,
    /// Shown on wide screens only (every other label is dropped on phones).
    pub wide_only: bool,
}

/// One bucket of a trend: its position, and its point unless it has no answers.
pub struct TrendBucket {
    pub x: String,
    pub y: Option<String>,
    pub start: String,
    pub n: i64,
    pub value: String,
    pub tip: String,
}

/// A line over time with its 95 % band; empty buckets break the line and the band.
pub struct Trend {
    pub width: String,
    pub title: String,
    pub desc: String,
    pub height: String,
    pub x0: String,
    pub x1: String,
    pub baseline: String,
    /// Top of the small mark an empty bucket gets on the baseline.
    pub gap_top: String,
    pub grid: Vec<Tick>,
    pub xlabels: Vec<XLabel>,
    /// Polygons (`points` attribute) of the band, one per run of non-empty buckets.
    pub bands: Vec<String>,
    /// Polylines, one per run of two or more non-empty buckets.
    pub lines: Vec<String>,
    pub buckets: Vec<TrendBucket>,
    pub table: Table,
}

/// One bucket's input to [`trend`].
pub struct TrendInput {
    pub start: NaiveDate,
    pub n: i64,
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

/// Which x labels to show so that at most about eight fit.
fn label_every(n: usize) -> usize {
    n.div_ceil(8).max(1)
}

/// The trend chart of `points` on the value scale `lo..=hi` (NPS −100…100, CSAT 0…100).
#[allow(clippy::too_many_arguments)]
pub fn trend(
    title: String,
    desc: String,
    measure: &str,
    points: &[TrendInput],
    (lo, hi): (f64, f64),
    interval: &str,
) -> Trend {
    let height = 240.0;
    let bottom = height - 32.0;
    let (x0, x1) = (LEFT + 12.0, WIDE - RIGHT);
    let step = (x1 - x0) / points.len().max(1) as f64;
    let y = |v: f64| bottom - (v.clamp(lo, hi) - lo) / (hi - lo) * (bottom - TOP);
    let grid = (0..=4)
        .map(|i| {
            let v = lo + (hi - lo) * i as f64 / 4.0;
            Tick {
                y: c(y(v)),
                label: num(v),
            }
        })
        .collect();
    let every = label_every(points.len());
    let mut xlabels = Vec::new();
    let mut buckets = Vec::new();
    let mut runs: Vec<Vec<(f64, f64, [f64; 2])>> = vec![Vec::new()];
    for (i, p) in points.iter().enumerate() {
        let x = x0 + step * (i as f64 + 0.5);
        if i % every == 0 {
            xlabels.push(XLabel {
                x: c(x),
                label: bucket_label(p.start, interval),
                wide_only: (i / every) % 2 == 1,
            });
        }
        let value = p.value.filter(|_| p.n > 0);
        match value {
            Some(v) => runs
                .last_mut()
                .expect("one run")
                .push((x, v, p.ci.unwrap_or([v, v]))),
            None => runs.push(Vec::new()),
        }
        buckets.push(TrendBucket {
            x: c(x),
            y: value.map(|v| c(y(v))),
            start: p.start.to_string(),
            n: p.n,
            value: value.map(num).unwrap_or_default(),
            tip: match value {
                Some(v) => format!(
                    "{}: {measure} {} (n = {})",
                    bucket_label(p.start, interval),
                    num(v),
                    p.n
                ),
                None => format!("{}: no answers", bucket_label(p.start, interval)),
            },
        });
    }
    let mut bands = Vec::new();
    let mut lines = Vec::new();
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let half = if run.len() == 1 {
            (step / 4.0).min(6.0)
        } else {
            0.0
        };
        let mut upper: Vec<String> = Vec::new();
        let mut lower: Vec<String> = Vec::new();
        for (x, _, ci) in run {
            upper.push(format!("{},{}", c(x - half), c(y(ci[1]))));
            lower.push(format!("{},{}", c(x - half), c(y(ci[0]))));
            if half > 0.0 {
                upper.push(format!("{},{}", c(x + half), c(y(ci[1]))));
                lower.push(format!("{},{}", c(x + half), c(y(ci[0]))));
            }
        }
        lower.reverse();
        upper.extend(lower);
        bands.push(upper.join(" "));
        if run.len() > 1 {
            lines.push(
                run.iter()
                    .map(|(x, v, _)| format!("{},{}", c(*x), c(y(*v))))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    let table = Table {
        head: vec![
            "Bucket".into(),
            "Answers".into(),
            measure.into(),
            "95 % interval".into(),
        ],
        rows: points
            .iter()
            .map(|p| {
                vec![
                    bucket_label(p.start, interval),
                    p.n.to_string(),
                    p.value
                        .filter(|_| p.n > 0)
                        .map(num)
                        .unwrap_or_else(|| "–".into()),
                    p.ci.filter(|_| p.n > 0)
                        .map(|[a, b]| format!("{} to {}", num(a), num(b)))
                        .unwrap_or_else(|| "–".into()),
                ]
            })
            .collect(),
    };
    Trend {
        width: c(WIDE),
        title,
        desc,
        height: c(height),
        x0: c(x0),
        x1: c(x1),
        baseline: c(bottom),
        gap_top: c(bottom - 6.0),
        grid,
        xlabels,
        bands,
        lines,
        buckets,
        table,
    }
}

/// A vertical bar.
pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    /// Centre of the bar (labels).
    pub cx: String,
    /// Where the value label goes (above the bar).
    pub vy: String,
    pub class: &'static str,
    pub label: String,
    /// Shown above the bar when the chart has room; empty for no value.
    pub value: String,
    pub tip: String,
}

/// A vertical bar chart.
pub struct Bars {
    pub id: &'static str,
    pub width: String,
    pub title: String,
    pub desc: String,
    pub height: String,
    pub x0: String,
    pub x1: String,
    pub baseline: String,
    pub label_y: String,
    pub grid: Vec<Tick>,
    pub bars: Vec<Bar>,
    /// Whether each bar's value is written above it (few bars).
    pub values: bool,
    /// Whether the values also fit on phones (else they are shown on wide screens only).
    pub values_narrow: bool,
    /// Per bar: whether its axis label is shown, and whether only on wide screens.
    pub shown: Vec<bool>,
    pub wide_only: Vec<bool>,
    pub legend: Vec<(&'static str, String)>,
    pub table: Table,
}

/// One bar's input to [`bars`]: its axis label, value (none: no bar), colour class and the
/// value as text.
pub struct BarInput {
    pub label: String,
    pub value: Option<f64>,
    pub class: &'static str,
    pub text: String,
}

/// A bar chart of `items` from 0 to `max` (rounded up to a readable top); `grid_label`
/// writes a grid value.
#[allow(clippy::too_many_arguments)]
pub fn bars(
    id: &'static str,
    title: String,
    desc: String,
    items: &[BarInput],
    max: f64,
    grid_label: &dyn Fn(f64) -> String,
    legend: Vec<(&'static str, String)>,
    table: Table,
) -> Bars {
    let height = 200.0;
    let bottom = height - 28.0;
    let (x0, x1) = (LEFT, HALF - RIGHT);
    let top = nice_top(max);
    let step = (x1 - x0) / items.len().max(1) as f64;
    let w = (step * 0.7).min(48.0);
    let y = |v: f64| bottom - v.max(0.0) / top * (bottom - TOP - 8.0);
    let steps = grid_steps(top);
    let grid = (0..=steps)
        .map(|i| {
            let v = top * i as f64 / steps as f64;
            Tick {
                y: c(y(v)),
                label: grid_label(v),
            }
        })
        .collect();
    // Axis labels and values only where they fit: a label every `every` bars, values when
    // the widest fits its bar's slot (the data table and the tooltips have them all).
    let widest = |f: &dyn Fn(&BarInput) -> usize| items.iter().map(f).max().unwrap_or(0);
    let label_w = widest(&|b| b.label.chars().count()) as f64 * CHAR_W + 6.0;
    let every = ((label_w / step).ceil() as usize).max(1);
    let value_w = widest(&|b| b.text.chars().count()) as f64 * CHAR_W + 2.0;
    let values_fit = value_w <= step;
    // Phones set the text at 20 units instead of 12 (see the stylesheet).
    let values_narrow = value_w * NARROW_SCALE <= step;
    let bars: Vec<Bar> = items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let cx = x0 + step * (i as f64 + 0.5);
            let v = b.value.unwrap_or(0.0);
            Bar {
                x: c(cx - w / 2.0),
                y: c(y(v)),
                w: c(w),
                h: c((bottom - y(v)).max(if b.value.is_some() { 1.0 } else { 0.0 })),
                cx: c(cx),
                vy: c(y(v) - 4.0),
                class: b.class,
                label: b.label.clone(),
                value: if b.value.is_some() {
                    b.text.clone()
                } else {
                    String::new()
                },
                tip: format!(
                    "{}: {}",
                    b.label,
                    if b.value.is_some() { &b.text } else { "none" }
                ),
            }
        })
        .collect();
    let shown = (0..items.len()).map(|i| i % every == 0).collect();
    let narrow_every = ((label_w * NARROW_SCALE / step).ceil() as usize).max(every);
    let wide_only = (0..items.len()).map(|i| i % narrow_every != 0).collect();
    Bars {
        id,
        width: c(HALF),
        title,
        desc,
        height: c(height),
        x0: c(x0),
        x1: c(x1),
        baseline: c(bottom),
        label_y: c(bottom + 18.0),
        grid,
        values: values_fit,
        values_narrow,
        bars,
        shown,
        wide_only,
        legend,
        table,
    }
}

/// How many grid steps divide `top` (from [`nice_top`]) into round numbers: fifths of
/// 2.5 and 5 (50, 100, …), quarters of 1 and 2 (25, 50, …).
fn grid_steps(top: f64) -> usize {
    let m = top / 10f64.powf(top.log10().floor());
    if (m - 2.5).abs() < 1e-9 || (m - 5.0).abs() < 1e-9 {
        5
    } else {
        4
    }
}

/// A round number at or above `max` (1, 2, 2.5 or 5 times a power of ten).
pub fn nice_top(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= max - 1e-9 {
            return m * p;
        }
    }
    10.0 * p
}

/// One row of a segment comparison.
pub struct SegmentBar {
    pub y: String,
    pub ty: String,
    pub x: String,
    pub w: String,
    pub label: String,
    pub value: String,
    pub n: i64,
    pub small: bool,
    pub class: &'static str,
}

/// Horizontal bars per segment value, from the zero line.
pub struct Segments {
    pub width: String,
    /// Right end of the labels, and of the values.
    pub label_x: String,
    pub value_x: String,
    /// Whether any segment is a small sample (the note under the chart).
    pub any_small: bool,
    pub title: String,
    pub desc: String,
    pub height: String,
    pub zero: String,
    pub rows: Vec<SegmentBar>,
    pub table: Table,
}

/// Below this many answers a segment is flagged as a small sample.
pub const SMALL_N: i64 = 30;

/// One segment's input: its value (`None`: no property), answers, score and interval.
pub struct SegmentInput {
    pub label: String,
    pub n: i64,
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

pub fn segments(
    title: String,
    desc: String,
    measure: &str,
    rows: &[SegmentInput],
    (lo, hi): (f64, f64),
) -> Segments {
    // Zoom in on the values (NPS: symmetric around 0), at most the whole scale.
    let reach = rows
        .iter()
        .filter_map(|r| r.value)
        .map(f64::abs)
        .fold(0.0, f64::max);
    let (lo, hi) = if lo < 0.0 {
        let top = nice_top(reach.max(10.0)).min(hi);
        (-top, top)
    } else {
        (lo, hi)
    };
    let row_h = 26.0;
    let height = TOP + row_h * rows.len().max(1) as f64 + 8.0;
    let (x0, x1) = (130.0, HALF - 150.0);
    let x = |v: f64| x0 + (v.clamp(lo, hi) - lo) / (hi - lo) * (x1 - x0);
    let zero = x(0.0_f64.max(lo));
    let out = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = r.value.unwrap_or(0.0);
            let (a, b) = if x(v) < zero {
                (x(v), zero)
            } else {
                (zero, x(v))
            };
            let mut label: String = r.label.chars().take(18).collect();
            if r.label.chars().count() > 18 {
                label.push('…');
            }
            SegmentBar {
                y: c(TOP + row_h * i as f64 + 4.0),
                ty: c(TOP + row_h * i as f64 + 17.0),
                x: c(a),
                w: c((b - a).max(1.0)),
                label,
                value: match r.value {
                    Some(v) => format!("{} (n = {})", num(v), r.n),
                    None => format!("– (n = {})", r.n),
                },
                n: r.n,
                small: r.n < SMALL_N,
                class: if v < 0.0 { "c-bad" } else { "c-good" },
            }
        })
        .collect();
    let table = Table {
        head: vec![
            "Segment".into(),
            "Answers".into(),
            measure.into(),
            "95 % interval".into(),
            "Note".into(),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.n.to_string(),
                    r.value.map(num).unwrap_or_else(|| "–".into()),
                    r.ci.map(|[a, b]| format!("{} to {}", num(a), num(b)))
                        .unwrap_or_else(|| "–".into()),
                    if r.n < SMALL_N {
                        "small sample".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect(),
    };
    Segments {
        width: c(HALF),
        label_x: c(x0 - 8.0),
        title,
        desc,
        height: c(height),
        zero: c(zero),
        value_x: c(HALF - 4.0),
        any_small: rows.iter().any(|r| r.n < SMALL_N),
        rows: out,
        table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    #[test]
    fn an_empty_bucket_breaks_the_line_and_the_band() {
        let p = |day, n, v: Option<f64>| TrendInput {
            start: d(day),
            n,
            value: v,
            ci: v.map(|v| [v - 10.0, v + 10.0]),
        };
        let t = trend(
            "T".into(),
            "D".into(),
            "NPS",
            &[
                p(1, 3, Some(20.0)),
                p(2, 2, Some(40.0)),
                p(3, 0, None),
                p(4, 1, Some(-50.0)),
            ],
            (-100.0, 100.0),
            "day",
        );
        assert_eq!(t.buckets.len(), 4);
        assert_eq!(t.buckets.iter().filter(|b| b.y.is_some()).count(), 3);
        assert_eq!(
            t.lines.len(),
            1,
            "one line over the first two; a lone point has none"
        );
        assert_eq!(t.bands.len(), 2, "one band per run");
        assert_eq!(t.lines[0].split(' ').count(), 2);
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(num(42.50), "42.5");
        assert_eq!(num(40.0), "40");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(-12.5), "-12.5");
        assert_eq!(duration(30.0), "30 s");
        assert_eq!(duration(1800.0), "30 min");
        assert_eq!(duration(5400.0), "1.5 h");
        assert_eq!(duration(3.0 * 86400.0), "3 d");
        assert_eq!(nice_top(7.0), 10.0);
        assert_eq!(nice_top(120.0), 200.0);
        assert_eq!(nice_top(0.0), 1.0);
    }
}
