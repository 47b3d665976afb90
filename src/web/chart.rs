//! Server-rendered SVG for the status page and badges, as plain strings: readable without JavaScript, cheap to
//! draw for every row of a page. Parts hand numbers in; these functions know no part.

use std::fmt::Write as _;

use super::page::escape;

/// A time axis: `from_ms..to_ms` drawn over `left..left + width` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeAxis {
    /// The left edge's time (ms since the epoch).
    pub from_ms: i64,
    /// The right edge's time.
    pub to_ms: i64,
    /// The left edge, pixels.
    pub left: f64,
    /// The width, pixels.
    pub width: f64,
}

impl TimeAxis {
    /// The 24 hours before `now_ms`.
    pub fn last_day(now_ms: i64, left: f64, width: f64) -> TimeAxis {
        TimeAxis {
            from_ms: now_ms - 86_400_000,
            to_ms: now_ms,
            left,
            width,
        }
    }

    /// The x of time `t_ms`, clamped to the axis.
    pub fn x(&self, t_ms: i64) -> f64 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        let f = ((t_ms - self.from_ms) as f64 / span).clamp(0.0, 1.0);
        self.left + f * self.width
    }

    /// Whether `t_ms` is on the axis.
    pub fn contains(&self, t_ms: i64) -> bool {
        (self.from_ms..=self.to_ms).contains(&t_ms)
    }

    /// Tick marks every `every_ms` on whole multiples (UTC), as (x, "HH:MM").
    pub fn ticks(&self, every_ms: i64) -> Vec<(f64, String)> {
        let mut t = self.from_ms.div_euclid(every_ms) * every_ms + every_ms;
        let mut out = Vec::new();
        while t <= self.to_ms {
            let minutes = t.rem_euclid(86_400_000) / 60_000;
            out.push((
                self.x(t),
                format!("{:02}:{:02}", minutes / 60, minutes % 60),
            ));
            t += every_ms;
        }
        out
    }
}

/// An `<svg>` element: `class` for styling and tests, `label` for screen readers and as its tooltip.
pub fn svg(class: &str, width: f64, height: f64, label: &str, body: &str) -> String {
    format!(
        "<svg class=\"{class}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"{label}\"><title>{label}</title>{body}</svg>",
        label = escape(label),
    )
}

/// One layer of a stacked chart: its name (the tooltip), colour and one value per x.
pub struct Layer<'a> {
    /// The name shown in the tooltip.
    pub name: &'a str,
    /// Fill colour.
    pub color: &'a str,
    /// One value per x, in the chart's unit.
    pub values: Vec<f64>,
}

/// Stacked bars, one per slot over `width` pixels, the first layer at the bottom, scaled so `max` reaches the top
/// of a `height`-pixel chart. One `<path>` per layer, with the layer's name as tooltip and its values in
/// `data-values` (a slot without data stays empty).
pub fn stacked_bars(slots: usize, width: f64, layers: &[Layer], height: f64, max: f64) -> String {
    let max = if max > 0.0 { max } else { 1.0 };
    let step = width / slots.max(1) as f64;
    let bar = (step - 1.0).max(1.0);
    let scale = |v: f64| (v / max).min(1.0) * (height - 1.0);
    let mut base = vec![0.0; slots];
    let mut out = String::new();
    for layer in layers {
        let mut d = String::new();
        for (i, (b, v)) in base.iter_mut().zip(&layer.values).enumerate() {
            let h = scale(*b + v.max(0.0)) - scale(*b);
            if h > 0.0 {
                let y = height - scale(*b) - h;
                let _ = write!(
                    d,
                    "M{:.1} {y:.2}h{bar:.1}v{h:.2}h-{bar:.1}z",
                    i as f64 * step
                );
            }
            *b += v.max(0.0);
        }
        let values: Vec<String> = layer.values.iter().map(|v| format!("{v:.3}")).collect();
        let _ = write!(
            out,
            "<path class=\"layer {name}\" fill=\"{color}\" d=\"{d}\" data-values=\"{values}\"><title>{name}</title></path>",
            name = escape(layer.name),
            color = layer.color,
            values = values.join(" "),
        );
    }
    out
}

/// A polyline through `points` (pixels), with a tooltip.
pub fn line(points: &[(f64, f64)], color: &str, title: &str) -> String {
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
        pts.join(" "),
        escape(title)
    )
}

/// A row of cells, one per value (a share in 0..=1, or `None` for no data), each with its tooltip: the
/// 30-day uptime bar.
pub fn cells(values: &[(String, Option<f64>)], cell: f64, gap: f64, height: f64) -> String {
    let mut out = String::new();
    for (i, (title, v)) in values.iter().enumerate() {
        let color = v.map_or("#dde1e6", |v| uptime_color(v * 100.0));
        let _ = write!(
            out,
            "<rect class=\"cell\" x=\"{:.1}\" y=\"0\" width=\"{cell}\" height=\"{height}\" rx=\"1\" fill=\"{color}\" \
             data-value=\"{}\"><title>{}</title></rect>",
            i as f64 * (cell + gap),
            v.map_or(String::new(), |v| format!("{:.5}", v)),
            escape(title),
        );
    }
    out
}

/// Colours of shields.io badges by uptime percentage: brightgreen, green, yellow, orange, red.
pub fn uptime_color(pct: f64) -> &'static str {
    match pct {
        p if p >= 99.9 => "#4c1",
        p if p >= 99.0 => "#97ca00",
        p if p >= 95.0 => "#dfb317",
        p if p >= 90.0 => "#fe7d37",
        _ => "#e05d44",
    }
}

/// The width of `text` in Verdana 11px, near enough for a badge (shields.io's widths, rounded).
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' => 3.5,
            'f' | 'j' | 'r' | 't' | 'I' | ' ' | '(' | ')' | '-' => 4.5,
            'm' | 'w' | 'M' | 'W' | '%' => 10.5,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 7.5,
            _ => 7.0,
        })
        .sum()
}

/// A flat badge like shields.io's: `label` on grey, `value` on `color`.
pub fn badge(label: &str, value: &str, color: &str) -> String {
    let lw = (text_width(label) + 10.0).round();
    let vw = (text_width(value) + 10.0).round();
    let w = lw + vw;
    let (label, value) = (escape(label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
         <linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/>\
         <stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>\
         <clipPath id=\"r\"><rect width=\"{w}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>\
         <g clip-path=\"url(#r)\"><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{color}\"/><rect width=\"{w}\" height=\"20\" fill=\"url(#s)\"/></g>\
         <g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">\
         <text x=\"{lx}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{label}</text><text x=\"{lx}\" y=\"14\">{label}</text>\
         <text x=\"{vx}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{value}</text><text x=\"{vx}\" y=\"14\">{value}</text>\
         </g></svg>",
        lx = lw / 2.0,
        vx = lw + vw / 2.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_maps_and_ticks() {
        let a = TimeAxis::last_day(86_400_000 * 2, 10.0, 240.0);
        assert_eq!(a.x(a.from_ms), 10.0);
        assert_eq!(a.x(a.to_ms), 250.0);
        assert_eq!(a.x(0), 10.0, "clamped");
        let ticks = a.ticks(6 * 3_600_000);
        assert_eq!(ticks.len(), 4);
        assert_eq!(ticks[0].1, "06:00");
    }

    #[test]
    fn stacked_bars_sit_on_each_other() {
        let layer = |name, values| Layer {
            name,
            color: "#111",
            values,
        };
        let svg = stacked_bars(
            2,
            20.0,
            &[layer("a", vec![1.0, 0.0]), layer("b", vec![1.0, 2.0])],
            11.0,
            4.0,
        );
        assert!(svg.contains("d=\"M0.0 8.50h9.0v2.50h-9.0z\""), "{svg}");
        assert!(
            svg.contains("d=\"M0.0 6.00h9.0v2.50h-9.0zM10.0 6.00h9.0v5.00h-9.0z\""),
            "{svg}"
        );
        assert!(svg.contains("data-values=\"1.000 0.000\""));
    }

    #[test]
    fn badges_escape_and_size_themselves() {
        let b = badge("a<b", "up", "#4c1");
        assert!(b.contains("a&lt;b: up"));
        assert!(b.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(uptime_color(99.95), "#4c1");
        assert_eq!(uptime_color(50.0), "#e05d44");
    }
}
