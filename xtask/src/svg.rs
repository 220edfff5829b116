//! Small SVG line charts, written by hand so xtask needs no plotting dependency.
//!
//! Used for the pictures beside BENCHMARKS.md and the demo's output: connection attempts
//! per time window for each jitter kind (the thundering herd and its cure), latency over
//! time. A chart is a set of named series of `(x, y)` points sharing two linear axes.

use std::fmt::Write as _;

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// A moment to point at: a dashed vertical line at `x`, labelled at the top.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    pub(crate) x: f64,
    pub(crate) label: String,
}

/// What a chart says about itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) series: Vec<Series>,
    /// Draw the y axis on a log10 scale (herds span 1 to 10,000 attempts per window).
    pub(crate) log_y: bool,
    /// Moments marked on the x axis (the cluster demo's kill and takeover).
    pub(crate) markers: Vec<Marker>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Distinct on white and for the common forms of colour blindness (Okabe–Ito).
const COLOURS: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];

impl Chart {
    /// The chart as a standalone SVG document.
    pub(crate) fn render(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, 0.0_f64);
        for &(x, y) in points {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_max = y_max.max(y);
        }
        if !x_min.is_finite() {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        let y_top = if self.log_y {
            10f64.powf(y_max.max(1.0).log10().ceil().max(1.0))
        } else {
            nice_ceiling(y_max)
        };
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| {
            let frac = if self.log_y {
                // Zero has no logarithm: it sits on the axis, one decade below 1.
                (y.max(0.1).log10() + 1.0) / (y_top.log10() + 1.0)
            } else {
                y / y_top
            };
            TOP + plot_h - frac.clamp(0.0, 1.0) * plot_h
        };

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        // Axes, ticks and grid.
        let _ = writeln!(
            s,
            r##"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="#333"/>"##,
            TOP + plot_h,
            LEFT + plot_w
        );
        // Ticks on a round step (1, 2 or 5 × 10^k), about five of them.
        let step = nice_ceiling((x_max - x_min) / 5.0);
        let first = (x_min / step).ceil() as i64;
        let last = (x_max / step + 1e-9).floor() as i64;
        for i in first..=last {
            let x = i as f64 * step;
            let px = sx(x);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 18.0,
                tick(x)
            );
        }
        let y_ticks: Vec<f64> = if self.log_y {
            let decades = y_top.log10().round() as i32;
            (0..=decades).map(|d| 10f64.powi(d)).collect()
        } else {
            (0..=5).map(|i| y_top * f64::from(i) / 5.0).collect()
        };
        for y in y_ticks {
            let py = sy(y);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 8.0,
                py + 4.0,
                tick(y)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 15.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Markers, under the lines; labels staggered so two close moments stay legible.
        for (i, marker) in self.markers.iter().enumerate() {
            let px = sx(marker.x.clamp(x_min, x_max));
            let ly = TOP + 12.0 + 14.0 * i as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{ly:.1}" fill="#555">{}</text>"##,
                TOP + plot_h,
                px + 4.0,
                escape(&marker.label)
            );
        }
        // Lines and the legend.
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut d = String::new();
            for (j, &(x, y)) in series.points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if j == 0 { "M" } else { "L" },
                    sx(x),
                    sy(y)
                );
            }
            let _ = writeln!(
                s,
                r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.6"/>"#,
                d.trim_end()
            );
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = LEFT + plot_w + 15.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        let _ = writeln!(s, "</svg>");
        s
    }
}

/// The smallest of 1, 2, 5 × 10^k at or above `y` (a tidy top for a linear axis).
fn nice_ceiling(y: f64) -> f64 {
    if y <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(y.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= y)
        .unwrap_or(10.0 * magnitude)
}

fn tick(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_y: bool) -> Chart {
        Chart {
            title: "Herd <test> & cure".into(),
            x_label: "time (s)".into(),
            y_label: "attempts per 100 ms".into(),
            series: vec![
                Series {
                    name: "no jitter".into(),
                    points: vec![(0.0, 0.0), (5.0, 10_000.0), (5.1, 0.0)],
                },
                Series {
                    name: "full jitter".into(),
                    points: vec![(0.0, 0.0), (5.0, 400.0), (7.0, 350.0)],
                },
            ],
            log_y,
            markers: vec![Marker {
                x: 5.0,
                label: "server back".into(),
            }],
        }
    }

    #[test]
    fn renders_a_well_formed_document_with_every_series() {
        let svg = chart(false).render();
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("no jitter") && svg.contains("full jitter"));
        assert_eq!(svg.matches("<path d=\"M").count(), 3, "axes + two series");
        assert!(svg.contains("stroke-dasharray") && svg.contains("server back"));
        // Titles are escaped, never raw markup.
        assert!(svg.contains("Herd &lt;test&gt; &amp; cure"));
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }

    #[test]
    fn points_stay_inside_the_plot_area() {
        for log_y in [false, true] {
            let svg = chart(log_y).render();
            for path in svg.split("<path d=\"").skip(2) {
                let d = path.split('"').next().unwrap();
                for pair in d.split(' ') {
                    let (x, y) = pair.trim_start_matches(['M', 'L']).split_once(',').unwrap();
                    let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                    assert!((LEFT..=WIDTH - RIGHT).contains(&x), "x {x}");
                    assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "y {y}");
                }
            }
        }
    }

    #[test]
    fn empty_chart_still_renders() {
        let svg = Chart {
            title: "empty".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![],
            log_y: false,
            markers: vec![],
        }
        .render();
        assert!(svg.contains("</svg>"));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(10_000.0), 10_000.0);
        assert_eq!(nice_ceiling(10_001.0), 20_000.0);
    }
}
