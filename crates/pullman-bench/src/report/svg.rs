//! Hand-written SVG plots: a latency-percentile plot and a horizontal bar chart. No
//! plotting dependency; the output is small, diffable text.

use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 10] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#17becf", "#bcbd22",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(title: &str, w: f64, h: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
<text x=\"{}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        w / 2.0,
        esc(title)
    )
}

/// Latency against percentile: x is `log10(1 / (1 - q))` (p50 to p99.9 evenly spaced), y is
/// latency in ms on a log scale. Each series is `(label, [(q, ms)])` with q ascending; a
/// series whose label starts with "sim:" is dashed.
pub fn percentiles(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::MAX, f64::min).max(0.01);
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (y0, y1) = (lo.log10().floor(), hi.log10().ceil());
    let x_of = |q: f64| {
        let v = (1.0 / (1.0 - q.min(0.9999))).log10();
        LEFT + v / 3.0 * (W - LEFT - RIGHT)
    };
    let y_of = |ms: f64| {
        let v = ms.max(lo).log10();
        H - BOTTOM - (v - y0) / (y1 - y0) * (H - TOP - BOTTOM)
    };
    let mut s = header(title, W, H);
    for (q, name) in [(0.0, "p0"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")]
        .into_iter()
        .chain([(0.5, "p50")])
    {
        let x = x_of(q);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/>\
<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{name}</text>",
            H - BOTTOM,
            H - BOTTOM + 16.0
        );
    }
    let mut e = y0;
    while e <= y1 {
        let y = y_of(10f64.powf(e));
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            10f64.powf(e)
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile (log scale of 1/(1-q))</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(q, v)| format!("{:.1},{:.1}", x_of(q), y_of(v)))
            .collect();
        let dash = if label.starts_with("sim:") {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
            path.join(" ")
        );
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\
<text x=\"{}\" y=\"{}\">{}</text>",
            W - RIGHT + 10.0,
            W - RIGHT + 34.0,
            W - RIGHT + 40.0,
            ly + 4.0,
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal bars, one per `(label, value)`, scaled to the largest.
pub fn bars(title: &str, unit: &str, items: &[(String, f64)]) -> String {
    let row = 26.0;
    let h = TOP + 20.0 + row * items.len() as f64;
    let label_w = 200.0;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
    let span = W - label_w - 120.0;
    let mut s = header(title, W, h);
    for (i, (label, v)) in items.iter().enumerate() {
        let y = TOP + i as f64 * row;
        let w = v / max * span;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
<rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\
<text x=\"{:.1}\" y=\"{:.1}\">{} {}</text>",
            label_w - 8.0,
            y + 15.0,
            esc(label),
            row - 6.0,
            COLORS[i % COLORS.len()],
            label_w + w + 6.0,
            y + 15.0,
            super::thousands(*v),
            esc(unit)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_wellformed_enough() {
        let p = percentiles(
            "t",
            &[
                ("a <b>".into(), vec![(0.5, 1.0), (0.99, 30.0)]),
                ("sim: floor".into(), vec![(0.5, 0.8), (0.99, 20.0)]),
            ],
        );
        assert!(p.starts_with("<svg") && p.ends_with("</svg>\n"));
        assert!(p.contains("a &lt;b&gt;") && p.contains("stroke-dasharray"));
        let b = bars("t", "req/s", &[("x".into(), 10.0), ("y".into(), 5.0)]);
        assert_eq!(b.matches("<rect x=").count(), 2);
    }
}
